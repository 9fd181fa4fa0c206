# SPDX-License-Identifier: Apache-2.0
"""keymgr policy check: each violation is created on purpose and must be found.

Runs the real CLI against real SoftHSM tokens and SQLite stores (fixture.py). Changes made
behind keymgr's back go through PKCS#11 directly (p11inspect.py) or through a changed
configuration, as an operator would make them.
"""
import json
import os
import subprocess
import sys
import time

import fixture

DAY = 86400


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class PolicyCheckTest(fixture.InstallationTest):

    def check(self, env, *extra, config=None, expect_ok=None):
        """policy check ENV --json; returns the violations."""
        p = self.inst.run("policy", "check", env, "--json", *extra, config=config)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["compliant"], p.returncode == 0, p.stdout)
        self.assertEqual(doc["violations_count"], len(doc["violations"]))
        if expect_ok is not None:
            self.assertEqual(p.returncode == 0, expect_ok, p.stdout + p.stderr)
        return doc["violations"]

    def checks(self, violations, keyset=None):
        return sorted({v["check"] for v in violations
                       if keyset is None or v.get("keyset") == keyset})

    def variant(self, name, old, new):
        """A copy of the standard configuration with one text replaced."""
        text = self.inst.config_text()
        self.assertIn(old, text)
        return self.inst.write_config(name, text.replace(old, new, 1))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst.create_keyset("staging/api", "access-token")
        cls.kid = cls.inst.rotate("staging/api")["kid"]

    def test_1_compliant(self):
        self.assertEqual(self.check("staging", expect_ok=True), [])

    def test_2_overdue_and_active_too_long(self):
        # staging rotates every 14d with a 30m publish lead: 20 days on, the key is overdue.
        v = self.check("staging", "--at", iso(time.time() + 20 * DAY), expect_ok=False)
        self.assertEqual(self.checks(v, "api"), ["active-too-long", "rotation-overdue"])
        self.assertTrue(any(x.get("kid") == self.kid for x in v))
        # A late check is not an early one: 13 days on, nothing is due yet.
        self.check("staging", "--at", iso(time.time() + 13 * DAY), expect_ok=True)

    def test_3_owner_removed_from_allowed_list(self):
        cfg = self.variant("owners.yaml", "      publish_lead: 30m\n",
                           "      publish_lead: 30m\n      owners: [ identity-team ]\n")
        v = self.check("staging", config=cfg, expect_ok=False)
        self.assertEqual(self.checks(v, "api"), ["owner"])
        self.assertIn("platform-security", v[0]["message"])

    def test_4_algorithm_no_longer_allowed(self):
        cfg = self.variant("algs.yaml", "      publish_lead: 30m\n",
                           "      publish_lead: 30m\n      algorithms: [ EdDSA ]\n")
        v = self.check("staging", config=cfg, expect_ok=False)
        self.assertEqual(self.checks(v, "api"), ["algorithm"])
        self.assertEqual(v[0]["kid"], self.kid)

    def test_5_distinct_purpose(self):
        # Allowed when created; the policy changes afterwards.
        self.inst.create_keyset("staging/api-two", "access-token")
        self.assertNotIn("distinct-purpose", self.checks(self.check("staging")))
        cfg = self.variant("distinct.yaml", "      publish_lead: 30m\n",
                           "      publish_lead: 30m\n      require_distinct_purpose: true\n")
        v = self.check("staging", config=cfg, expect_ok=False)
        self.assertIn("distinct-purpose", self.checks(v))

    def test_6_standby_missing(self):
        cfg = self.variant("standby.yaml", "      publish_lead: 30m\n",
                           "      publish_lead: 30m\n      standby: true\n")
        v = self.check("staging", config=cfg, expect_ok=False)
        self.assertIn("no-standby", self.checks(v, "api"))

    def test_7_key_added_to_token_behind_keymgr(self):
        # A key pair made on the production token without the store: the raw token verb.
        self.inst.create_keyset("production/api", "access-token")
        self.inst.rotate("production/api")
        self.assertNotIn("unknown-token-key", self.checks(self.check("production")))
        self.inst.run("token", "keygen", "--module", fixture.MODULE, "--token",
                      "keymgr-production", "--pin-source",
                      "file:" + self.inst.pin_file("production"), "--alg", "ES256",
                      config=False, ok=True)
        v = self.check("production", expect_ok=False)
        self.assertIn("unknown-token-key", self.checks(v))

    def test_8_key_deleted_from_token_behind_keymgr(self):
        self.inst.create_keyset("staging/gone", "access-token")
        k = self.inst.rotate("staging/gone")
        p = subprocess.run([sys.executable, os.path.join(fixture.HERE, "p11inspect.py"),
                            fixture.MODULE, "keymgr-staging", self.inst.pin_file("staging"),
                            "--destroy-id", k["token"]["cka_id"]],
                           env=self.inst.env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        v = self.check("staging", expect_ok=False)
        missing = [x for x in v if x["check"] == "missing-token-key"]
        self.assertEqual([x["kid"] for x in missing], [k["kid"]])

    def test_9a_audit_key_is_not_an_unknown_token_key(self):
        # The first checkpoint creates the environment's audit key in the token; it belongs
        # to the audit tables, not to a key set, and is no violation.
        self.inst.run("audit", "checkpoint", "staging", ok=True)
        v = self.check("staging")
        self.assertNotIn("unknown-token-key", self.checks(v), v)

    def test_0_pending_is_not_a_violation(self):
        """A standby published less than publish_lead ago: pending with its time, exit 0."""
        inst = self.inst
        inst.run("keyset", "create", "production/pending", "--alg", "ES256", "--owner", "o",
                 "--purpose", "id-token", ok=True)
        standby = inst.json("key", "list", "production/pending", "--state", "published")
        self.assertEqual(len(standby), 1)
        ready = iso(int(__import__("calendar").timegm(time.strptime(
            standby[0]["times"]["published"], "%Y-%m-%dT%H:%M:%SZ"))) +
            fixture.PROD_PUBLISH_LEAD)
        p = inst.run("policy", "check", "production", "--json")
        doc = json.loads(p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout)
        pend = [x for x in doc["pending"] if x["keyset"] == "pending"]
        self.assertEqual([(x["check"], x["until"]) for x in pend], [("no-standby", ready)])
        self.assertNotIn("pending", [v.get("keyset") for v in doc["violations"]])
        text = inst.run("policy", "check", "production").stdout
        self.assertIn(f"production/pending: pending until {ready}: the standby was "
                      "published less than publish_lead (2h) ago", text)
        # At that time it is satisfied, with no action taken.
        doc = json.loads(inst.run("policy", "check", "production", "--json", "--at",
                                  ready).stdout)
        self.assertEqual([x for x in doc["pending"] if x["keyset"] == "pending"], [])
        # Revoking the active key promotes that standby and makes a new one: pending again.
        active = inst.json("key", "list", "production/pending", "--state", "active")[0]
        inst.run("revoke", "--env", "production", "--reason", "drill", "--", active["kid"],
                 ok=True)
        doc = json.loads(inst.run("policy", "check", "production", "--json").stdout)
        self.assertEqual([x["check"] for x in doc["pending"] if x["keyset"] == "pending"],
                         ["no-standby"])

    def test_9c_token_findings_are_reconciles(self):
        """What policy check flags between store and token, reconcile repairs or explains;
        an intent that never reached the token is neither."""
        inst = self.inst
        inst.create_keyset("staging/intent", "access-token")
        inst.rotate("staging/intent")
        # A generation the token refused leaves an abandoned intent: a revoked row with no
        # kid, whose CKA_ID the token never held (written as keymgr writes it).
        c = __import__("sqlite3").connect(inst.store("staging"))
        c.execute("INSERT INTO keys(kid, keyset_id, alg, rsa_bits, token_label, token_serial,"
                  " cka_id, owner, purpose, state, pending, generated_at, revoked_at,"
                  " revoke_reason) SELECT NULL, id, alg, 0, 'keymgr-staging', '', ?, owner,"
                  " purpose, 'revoked', 0, 1, 1, 'token failed to generate the key' FROM"
                  " keysets WHERE name = 'intent'", (b"KMGR" + os.urandom(16),))
        c.commit()
        c.close()
        # (Earlier cases of this class left other findings in staging: only this key set's
        # and the environment's own count here.)
        def ours(items):
            return [x for x in items if x.get("keyset") in ("intent", "", None)]
        rec = json.loads(inst.run("reconcile", "staging", "--dry-run", "--json").stdout)
        self.assertEqual(ours(rec["findings"]), [])
        doc = json.loads(inst.run("policy", "check", "staging", "--json").stdout)
        self.assertEqual(ours(doc["violations"]), [])
        # A key deleted behind keymgr's back: both see it, with the same words and kid.
        k = inst.json("key", "list", "staging/intent", "--state", "active")[0]
        p = subprocess.run([sys.executable, os.path.join(fixture.HERE, "p11inspect.py"),
                            fixture.MODULE, "keymgr-staging", inst.pin_file("staging"),
                            "--destroy-id", k["token"]["cka_id"]],
                           env=inst.env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        rec = json.loads(inst.run("reconcile", "staging", "--dry-run", "--json").stdout)
        doc = json.loads(inst.run("policy", "check", "staging", "--json").stdout)
        flagged = [v for v in ours(doc["violations"]) if v["check"] == "missing-token-key"]
        self.assertEqual([(v["kid"], v["message"]) for v in flagged],
                         [(f["kid"], f["detail"]) for f in ours(rec["findings"])])
        self.assertEqual([v["kid"] for v in flagged], [k["kid"]])
        self.assertEqual(flagged[0]["repair"], "keymgr rotate staging/intent --now --force")

    def test_9_bad_arguments(self):
        p = self.inst.run("policy", "check", "staging", "--at", "yesterday")
        self.assertRefused(p, 2, "invalid --at")
        p = self.inst.run("policy", "check", "qa")
        self.assertRefused(p, 1, "unknown environment 'qa'")
        p = self.inst.run("policy", "check", "Staging")
        self.assertRefused(p, 2, "invalid environment name")


if __name__ == "__main__":
    fixture.main()
