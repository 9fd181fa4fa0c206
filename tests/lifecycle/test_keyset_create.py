# SPDX-License-Identifier: Apache-2.0
"""keyset create makes a key set that can work, or says why not (issue 14, item 3).

  - with the token reachable: the first key is active when the command returns, a standby
    is made where the policy asks for one, and signing works without a `rotate`;
  - --no-key: the key set only; keymgrd, `apply` or `rotate` make the key later;
  - token not usable (a wrong PIN): the key set is created, no key and no token object is
    made, the warning says why and that `keymgr apply` will make it; `apply` then does;
  - a key set that cannot sign (no issuer, audiences or signers) is flagged by create, show
    and policy check, naming the configuration keys, as a warning (exit 0);
  - refusals of an algorithm, RSA size, owner or purpose name the allowed values and the
    configuration key that sets them, and change nothing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


class KeysetCreateTest(fixture.InstallationTest):

    def create(self, ref, purpose="access-token", *extra, config=None):
        p = self.inst.run("keyset", "create", ref, "--alg", "ES256", "--owner",
                          "platform-security", "--purpose", purpose, "--json", *extra,
                          config=config, ok=True)
        return json.loads(p.stdout), p.stderr

    def states(self, ref, config=None):
        return sorted(k["state"] for k in self.inst.json("key", "list", ref, config=config))

    def test_first_key_and_standby_in_the_same_run(self):
        inst = self.inst
        out, err = self.create("production/api")
        first = out["first_key"]
        self.assertEqual((first["state"], first["keyset"]), ("active", "api"))
        self.assertIsNone(out["first_key_note"])
        # Production keeps a standby: made in the same run, so keymgrd adds nothing.
        self.assertEqual(self.states("production/api"), ["active", "published"])
        self.assertEqual(len(inst.jwks_kids("production/api")), 2)
        self.assertEqual(inst.json("apply", "production/api")["applied"], 0)
        # It signs at once, with the first key.
        import jwt
        token = inst.sign("production/api")
        self.assertEqual(jwt.get_unverified_header(token)["kid"], first["kid"])
        # Issuer and audiences are configured, signers are not: a warning naming the key.
        self.assertEqual((out["can_sign"], out["signing_gaps"]), (False, ["signers"]))
        self.assertIn("warning: key set production/api cannot sign", err)
        self.assertIn("set signers under environments.production.keysets.api", err)

    def test_without_standby_one_key(self):
        out, _ = self.create("staging/api")
        self.assertEqual(out["first_key"]["state"], "active")
        self.assertEqual(self.states("staging/api"), ["active"])
        p = self.inst.run("keyset", "create", "staging/wall", "--alg", "ES256", "--owner",
                          "o", "--purpose", "id-token", ok=True)
        kid = self.inst.json("key", "list", "staging/wall")[0]["kid"]
        self.assertIn(f"staging/wall: key {kid} is active", p.stdout)

    def test_no_key_and_signing_gaps(self):
        inst = self.inst
        out, err = self.create("development/bare", "id-token", "--no-key")
        self.assertIsNone(out["first_key"])
        self.assertEqual(out["first_key_note"], "--no-key")
        self.assertEqual(self.states("development/bare"), [])
        self.assertEqual(out["signing_gaps"], ["issuer", "audiences", "signers"])
        self.assertIn("it signs nothing", err)
        self.assertIn("set issuer, audiences, signers under "
                      "environments.development.keysets.bare", err)
        self.assertIn("(the key set has no entry there)", err)
        shown = inst.json("keyset", "show", "development/bare")
        self.assertEqual((shown["can_sign"], shown["signing_gaps"]),
                         (False, ["issuer", "audiences", "signers"]))
        text = inst.run("keyset", "show", "development/bare", ok=True).stdout
        self.assertIn("warning      key set development/bare cannot sign", text)
        # policy check: a warning, not a violation.
        p = inst.run("policy", "check", "development", "--json")
        report = json.loads(p.stdout)
        warned = [w for w in report["warnings"] if w["keyset"] == "bare"]
        self.assertEqual([w["check"] for w in warned], ["cannot-sign"])
        self.assertIn("environments.development.keysets.bare", warned[0]["message"])
        self.assertNotIn("cannot-sign", [v["check"] for v in report["violations"]])
        text = inst.run("policy", "check", "development").stdout
        self.assertIn("cannot-sign        development/bare: warning: key set development/bare",
                      text)
        # The key comes from apply (as from keymgrd).
        inst.run("apply", "development/bare", ok=True)
        self.assertEqual(self.states("development/bare"), ["active"])

    def test_token_not_usable_creates_the_key_set_only(self):
        inst = self.inst
        text = inst.config_text().replace("file:./pins/staging.pin",
                                          "file:./pins/development.pin")
        wrong = inst.write_config("wrong-pin.yaml", text)
        tokens_before = inst.token_objects("staging")
        out, err = self.create("staging/revoked", config=wrong)
        self.assertIsNone(out["first_key"])
        self.assertIn("C_Login", out["first_key_note"])
        self.assertIn("no key made yet for staging/revoked", err)
        self.assertIn("'keymgr apply staging/revoked' makes it once the token can be opened",
                      err)
        self.assertEqual(self.states("staging/revoked"), [])
        self.assertEqual(inst.token_objects("staging"), tokens_before)
        inst.run("apply", "staging/revoked", ok=True)
        self.assertEqual(self.states("staging/revoked"), ["active"])

    def test_refusals_name_allowed_values_and_config_key(self):
        inst = self.inst
        text = inst.config_text().replace(
            "    http:\n      path: /development\n",
            "    http:\n      path: /development\n"
            "    policy:\n      algorithms: [ ES256, EdDSA ]\n"
            "      owners: [ platform-security, team-* ]\n")
        cfg = inst.write_config("narrow.yaml", text)
        for env in fixture.ENVS:   # every store exists (the first open creates one)
            inst.run("key", "list", env, ok=True)
        before = inst.snapshot()
        cases = [
            (["development/a", "--alg", "ES384", "--owner", "team-a", "--purpose",
              "access-token"], "does not allow algorithm ES384: allowed are ES256, EdDSA "
             "(set by environments.development.policy.algorithms)"),
            (["development/a", "--alg", "ES256", "--owner", "mallory", "--purpose",
              "access-token"], "owner 'mallory' is not allowed by the policy of environment "
             "'development': allowed are platform-security, team-* (set by "
             "environments.development.policy.owners)"),
            (["production/a", "--alg", "RS256", "--bits", "2048", "--owner", "o",
              "--purpose", "access-token"], "requires RSA keys of at least 3072 bits, not "
             "2048 (set by environments.production.policy.min_rsa_bits)"),
            (["production/a", "--alg", "ES256", "--owner", "o", "--purpose", "audit-trail"],
             "purpose 'audit-trail' is not allowed by the policy of environment 'production': "
             "allowed are access-token, id-token, refresh-token, logout-token, "
             "security-event-token, life, successor, conc, names, wall, json-one, json-two "
             "(set by environments.production.policy.purposes)"),
            (["staging/a", "--alg", "ES256", "--owner", "o", "--purpose", "Not A Slug"],
             "unknown purpose 'Not A Slug': use one of access-token, id-token, refresh-token, "
             "logout-token, security-event-token, service-account-token, or a custom "
             "lowercase slug listed in "
             "environments.staging.policy.purposes"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = inst.run("keyset", "create", *args, config=cfg)
                self.assertRefused(p, 1, msg)
        self.assertUnchanged(before, "refused keyset create")

    def test_set_owner_and_purpose_follow_the_policy(self):
        """set-owner/set-purpose: the rule lives in core/, with the same words as create."""
        inst = self.inst
        text = inst.config_text().replace(
            "    http:\n      path: /development\n",
            "    http:\n      path: /development\n"
            "    policy:\n      owners: [ team-* ]\n      purposes: [ access-token ]\n")
        cfg = inst.write_config("owners.yaml", text)
        inst.run("keyset", "create", "development/owned", "--alg", "ES256", "--owner",
                 "team-a", "--purpose", "access-token", "--no-key", config=cfg, ok=True)
        before = inst.snapshot()
        p = inst.run("keyset", "set-owner", "development/owned", "mallory", "--reason", "x",
                     config=cfg)
        self.assertRefused(p, 1, "owner 'mallory' is not allowed by the policy of environment "
                           "'development': allowed are team-* (set by "
                           "environments.development.policy.owners)")
        p = inst.run("keyset", "set-purpose", "development/owned", "id-token", "--reason", "x",
                     config=cfg)
        self.assertRefused(p, 1, "purpose 'id-token' is not allowed", "allowed are "
                           "access-token (set by environments.development.policy.purposes)")
        p = inst.run("keyset", "set-owner", "development/nope", "team-b", "--reason", "x",
                     config=cfg)
        self.assertRefused(p, 1, "unknown key set development/nope")
        self.assertUnchanged(before, "refused owner and purpose changes")
        inst.run("keyset", "set-owner", "development/owned", "team-b", "--reason", "reorg",
                 config=cfg, ok=True)
        self.assertEqual(inst.json("keyset", "show", "development/owned")["owner"], "team-b")


if __name__ == "__main__":
    fixture.main()
