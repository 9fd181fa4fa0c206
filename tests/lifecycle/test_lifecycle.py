# SPDX-License-Identifier: Apache-2.0
"""The whole life of a key through the keymgr CLI, checked after every step in three places:
the CLI's --json output, the SQLite store (read directly, read-only) and the token (opened
through PKCS#11 by p11inspect.py). Also: plain rotation timing, a JWT of production verified
with PyJWT against the production JWKS and refused against staging's, and two processes
rotating the same key set at once.

Usage: /usr/bin/python3 test_lifecycle.py PATH-TO-KEYMGR
"""
import calendar
import json
import os
import subprocess
import sys
import threading
import time

import jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402


def iso(t):
    return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))


class KeyLifeTest(InstallationTest):
    """create -> rotate -> rotate --now --force -> key remove -> destroy, in production."""

    def test_whole_life_of_a_key(self):
        inst = self.inst
        ks = inst.create_keyset("production/life", "life")
        self.assertEqual((ks["env"], ks["name"], ks["alg"], ks["owner"], ks["purpose"]),
                         ("production", "life", "ES256", "platform-security", "life"))
        self.assertEqual(inst.keys("production/life"), [])
        self.assertEqual(inst.jwks_kids("production/life"), [])

        # 1. The first key is active at once: nothing can verify yet, so no lead is needed.
        k1 = inst.rotate("production/life")
        old = k1["kid"]
        self.assertEqual(k1["state"], "active")
        self.assertFalse(k1["pending"])
        self.assertNotIn("activates_at", k1)
        self.assertEqual(k1["token"]["label"], "keymgr-production")
        self.assertEqual(set(k1["times"]), {"generated", "published", "active"})
        row = inst.db_key("production", old)
        self.assertEqual((row["state"], row["pending"]), ("active", 0))
        self.assertEqual(row["cka_id"].hex(), k1["token"]["cka_id"])
        self.assertIsNotNone(row["activated_at"])
        ids = inst.token_ids("production")
        self.assertEqual(ids.get(k1["token"]["cka_id"]), ["private", "public"])
        # Production keeps a standby, made in the same run.
        standby = [k["kid"] for k in inst.json("key", "list", "production/life", "--state",
                                               "published")]
        self.assertEqual(len(standby), 1)
        self.assertEqual(inst.jwks_kids("production/life"), sorted([old] + standby))

        # 2. rotate --now --force: the standby signs at once (published less than
        # publish_lead ago: a warning), the old key is retired but verifies, a new standby
        # is made.
        p = inst.run("rotate", "production/life", "--now", "--force", "--json", ok=True)
        k2 = json.loads(p.stdout)
        new = k2["kid"]
        self.assertEqual((new, k2["outcome"], k2["previous_kid"]), (standby[0], "early", old))
        self.assertIn("warning", p.stderr)
        self.assertIn(new, p.stderr)
        self.assertNotEqual(new, old)
        self.assertEqual(k2["state"], "active")
        self.assertEqual(inst.key(old, "production")["state"], "retired")
        self.assertEqual(inst.db_key("production", old)["state"], "retired")
        self.assertEqual(inst.db_key("production", new)["state"], "active")
        standby2 = [k["kid"] for k in inst.json("key", "list", "production/life", "--state",
                                                "published")]
        self.assertEqual(len(standby2), 1)
        self.assertNotIn(standby2[0], (old, new))
        self.assertEqual(inst.jwks_kids("production/life"), sorted([old, new] + standby2))
        self.assertTrue({old, new} <= set(inst.jwks_kids("production")))
        ids = inst.token_ids("production")
        for k in (k1, k2):
            self.assertEqual(ids.get(k["token"]["cka_id"]), ["private", "public"])
        active = inst.json("key", "list", "production/life", "--state", "active")
        self.assertEqual([k["kid"] for k in active], [new])

        # 3. key remove without --force: refused inside retire_retention; nothing changes.
        before = inst.snapshot()
        p = inst.run("key", "remove", "--env", "production", "--", old)
        self.assertRefused(p, 1, old, "retire_retention", "--force")
        self.assertUnchanged(before, "a refused key remove")

        # 4. key remove --force: gone from the JWKS, still in the token.
        out = inst.json("key", "remove", "--env", "production", "--force", "--", old)
        self.assertEqual(out, {"kid": old, "state": "removed"})
        self.assertEqual(inst.db_key("production", old)["state"], "removed")
        self.assertEqual(inst.jwks_kids("production/life"), sorted([new] + standby2))
        self.assertNotIn(old, inst.jwks_kids("production"))
        self.assertIn(k1["token"]["cka_id"], inst.token_ids("production"))

        # 5. destroy: the token objects go, the record stays as 'destroyed'.
        out = inst.json("destroy", "--env", "production", "--", old)
        self.assertEqual(out, {"kid": old, "state": "destroyed"})
        ids = inst.token_ids("production")
        self.assertNotIn(k1["token"]["cka_id"], ids)
        self.assertEqual(ids.get(k2["token"]["cka_id"]), ["private", "public"])
        shown = inst.key(old, "production")
        self.assertEqual(shown["state"], "destroyed")
        self.assertEqual(shown["env"], "production")
        self.assertEqual(set(shown["times"]),
                         {"generated", "published", "active", "retired", "removed",
                          "destroyed"})
        row = inst.db_key("production", old)
        self.assertEqual(row["state"], "destroyed")
        self.assertIsNotNone(row["destroyed_at"])
        self.assertIsNotNone(row["public_jwk"])  # the record keeps the public key
        self.assertNotIn(old, inst.jwks_kids("production"))
        # key show without --env finds it too.
        self.assertEqual(inst.json("key", "show", "--", old)["state"], "destroyed")

        # The history of the old key, in order, straight from the store.
        events = inst.db_query(
            "production", "SELECT e.what, e.from_state, e.to_state FROM key_events e "
            "JOIN keys k ON k.id = e.key_id WHERE k.kid = ? ORDER BY e.id", (old,))
        transitions = [(f, t) for what, f, t in events if what == "transition"]
        self.assertEqual(transitions, [("generated", "published"), ("published", "active"),
                                       ("active", "retired"), ("retired", "removed"),
                                       ("removed", "destroyed")])
        self.assertEqual([w for w, _, _ in events][:2], ["intent", "confirm"])

        # 6. A destroyed key cannot be destroyed or revoked again; nothing changes.
        before = inst.snapshot()
        p = inst.run("destroy", "--env", "production", "--", old)
        self.assertRefused(p, 1, "destroyed")
        p = inst.run("revoke", "--env", "production", "--reason", "again", "--", old)
        self.assertRefused(p, 1, "destroyed")
        self.assertUnchanged(before, "refused operations on a destroyed key")

        # The new key still signs, and its JWT verifies against the JWKS.
        jwt_text = inst.sign("production/life")
        self.assertEqual(jwt.get_unverified_header(jwt_text)["kid"], new)

    def test_plain_rotate_publishes_successor(self):
        inst = self.inst
        inst.create_keyset("production/successor", "successor")
        # Production keeps a standby: the first rotation makes the active key and it.
        first = inst.rotate("production/successor")
        self.assertEqual(first["outcome"], "first")
        keys = inst.json("key", "list", "production/successor")
        standby = [k["kid"] for k in keys if k["state"] == "published"]
        self.assertEqual(len(standby), 1)
        # The standby, published less than publish_lead ago, becomes the successor at its
        # publish time + publish_lead; a new standby is made at once.
        nxt = inst.rotate("production/successor")
        self.assertEqual((nxt["outcome"], nxt["kid"], nxt["state"]),
                         ("scheduled", standby[0], "published"))
        self.assertNotIn("active", nxt["times"])
        published = iso(nxt["times"]["published"])
        self.assertIsInstance(nxt["activates_at"], str)
        self.assertEqual(iso(nxt["activates_at"]), published + fixture.PROD_PUBLISH_LEAD)
        self.assertEqual(inst.db_key("production", nxt["kid"])["activate_at"],
                         published + fixture.PROD_PUBLISH_LEAD)
        # The current key keeps signing; all three are in the JWKS.
        self.assertEqual(inst.key(first["kid"], "production")["state"], "active")
        self.assertEqual(inst.db_key("production", nxt["kid"])["state"], "published")
        kids = inst.jwks_kids("production/successor")
        self.assertEqual(len(kids), 3)
        self.assertTrue({first["kid"], nxt["kid"]} <= set(kids))
        jwt_text = inst.sign("production/successor")
        self.assertEqual(jwt.get_unverified_header(jwt_text)["kid"], first["kid"])
        # A rotation is pending: nothing is added, the pending key and its time are printed.
        p = inst.run("rotate", "production/successor", ok=True)
        self.assertIn(f"a rotation is already pending: {nxt['kid']} activates at "
                      f"{nxt['activates_at']}", p.stdout)
        self.assertEqual(inst.jwks_kids("production/successor"), kids)

    def test_revoke_active_key_replaces_it_at_once(self):
        inst = self.inst
        inst.create_keyset("staging/revoked", "access-token")
        k = inst.rotate("staging/revoked")
        out = inst.json("revoke", "--env", "staging", "--reason", "compromise drill", "--",
                        k["kid"])
        self.assertEqual((out["kid"], out["state"], out["was"]),
                         (k["kid"], "revoked", "active"))
        # No standby in staging: a new key is generated and activated at once.
        new = out["replaced_by"]
        self.assertNotEqual(new, k["kid"])
        self.assertEqual(inst.key(new, "staging")["state"], "active")
        self.assertEqual(inst.jwks_kids("staging/revoked"), [new])
        shown = inst.key(k["kid"], "staging")
        self.assertEqual((shown["state"], shown["revoke_reason"]),
                         ("revoked", "compromise drill"))
        self.assertEqual(inst.db_key("staging", k["kid"])["state"], "revoked")
        jwt_text = inst.sign("staging/revoked")
        self.assertEqual(jwt.get_unverified_header(jwt_text)["kid"], new)
        # A revoked key may be destroyed at once.
        inst.json("destroy", "--env", "staging", "--", k["kid"])
        self.assertNotIn(k["token"]["cka_id"], inst.token_ids("staging"))
        self.assertEqual(inst.key(k["kid"], "staging")["state"], "destroyed")


class SignVerifyTest(InstallationTest):
    """A production JWT verifies against the production JWKS, and not against staging's."""

    absolute_paths = True  # this class uses a configuration with absolute paths

    def test_production_jwt_verifies_only_with_production_jwks(self):
        inst = self.inst
        for env in ("production", "staging"):
            inst.create_keyset(env + "/api", "access-token")
            inst.rotate(env + "/api")
        claims = dict(fixture.CLAIMS, exp=int(time.time()) + 600)
        token = inst.run("sign", "production/api", "--claims", json.dumps(claims),
                         ok=True).stdout.strip()
        header = jwt.get_unverified_header(token)
        prod_kid = inst.json("key", "list", "production/api", "--state", "active")[0]["kid"]
        self.assertEqual(header, {"alg": "ES256", "kid": prod_kid, "typ": "at+jwt"})

        prod = jwt.PyJWKSet.from_dict(inst.jwks("production"))
        got = jwt.decode(token, prod[prod_kid].key, algorithms=["ES256"],
                         audience="api.example.com", issuer=fixture.ISSUER["production"])
        # keymgr adds iss (the key set's issuer), iat, nbf and jti; the rest is ours.
        self.assertEqual({k: got[k] for k in claims}, claims)
        self.assertEqual(got["iss"], fixture.ISSUER["production"])
        self.assertTrue({"iat", "nbf", "jti"} <= set(got))

        staging = jwt.PyJWKSet.from_dict(inst.jwks("staging"))
        self.assertNotIn(prod_kid, [k.key_id for k in staging.keys])
        with self.assertRaises(KeyError):
            staging[prod_kid]
        # Even forcing every staging key onto the token: the signature does not verify.
        self.assertGreater(len(staging.keys), 0)
        for k in staging.keys:
            with self.assertRaises(jwt.InvalidSignatureError):
                jwt.decode(token, k.key, algorithms=["ES256"], audience="api.example.com")
        # keymgr's own strict verifier agrees, from JWKS files.
        for env, want in (("production", 0), ("staging", 1)):
            path = os.path.join(inst.dir, f"verify-{env}.json")
            inst.run("jwks", env, "--output", path, ok=True)
            p = inst.run("verify", "--jwks", path, "--alg", "ES256", "--iss",
                         fixture.ISSUER["production"], "--aud", "api.example.com", "--typ",
                         "at+jwt", "-", config=False, stdin=token + "\n")
            self.assertEqual(p.returncode, want, p.stderr)
            if want == 0:
                self.assertEqual(json.loads(p.stdout), got)
            else:
                self.assertIn(prod_kid, p.stderr)
        # And a staging JWT does not verify with the production key.
        st_token = inst.sign("staging/api")
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(st_token, prod[prod_kid].key, algorithms=["ES256"],
                       audience="api.example.com")


class ConcurrencyTest(InstallationTest):
    """Two processes rotate --now --force the same key set at once, ten times each."""

    ROUNDS = 10

    def test_concurrent_forced_rotations_keep_one_active_key(self):
        inst = self.inst
        inst.create_keyset("staging/conc", "id-token")
        inst.rotate("staging/conc")
        barrier = threading.Barrier(2)
        results = [[], []]

        def worker(i):
            barrier.wait()
            for _ in range(self.ROUNDS):
                p = subprocess.Popen(inst.argv(["rotate", "staging/conc", "--now", "--force",
                                                "--json"]),
                                     cwd=inst.dir, env=inst.env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                out, err = p.communicate(timeout=120)
                results[i].append((p.returncode, out, err))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        ok = 0
        new_kids = []
        for rc, out, err in results[0] + results[1]:
            inst.check_output("concurrent rotate", out, err)
            if rc == 0:
                ok += 1
                new_kids.append(json.loads(out)["kid"])
            else:
                # A refusal must say why (e.g. the store stayed busy), with exit 1.
                self.assertEqual(rc, 1, err)
                self.assertTrue(err.startswith("keymgr: "), err)
                print(f"  refused: {err.strip()}", flush=True)
        print(f"  concurrent rotations: {ok} of {2 * self.ROUNDS} succeeded", flush=True)
        self.assertGreater(ok, 0)

        keys = inst.keys("staging/conc")
        states = [k["state"] for k in keys]
        self.assertEqual(len(keys), 1 + ok, f"states: {states}")
        self.assertEqual(states.count("active"), 1)
        self.assertEqual(states.count("retired"), ok)
        self.assertFalse(any(k["pending"] for k in keys))
        self.assertEqual(len(set(k["kid"] for k in keys)), len(keys))
        self.assertTrue(set(new_kids) <= set(k["kid"] for k in keys))

        # The store agrees, and its history is consistent: every key was activated once,
        # every retired key retired once, after its activation.
        rows = inst.db_query("staging", "SELECT k.kid, k.state, k.activated_at, k.retired_at, "
                             "k.pending FROM keys k JOIN keysets s ON s.id = k.keyset_id "
                             "WHERE s.name = 'conc'")
        self.assertEqual(len(rows), 1 + ok)
        self.assertEqual(sum(1 for r in rows if r[1] == "active"), 1)
        for kid, state, act, ret, pending in rows:
            self.assertEqual(pending, 0)
            self.assertIsNotNone(act)
            if state == "retired":
                self.assertIsNotNone(ret)
                self.assertGreaterEqual(ret, act)
        ev = inst.db_query("staging", "SELECT e.to_state, count(*) FROM key_events e JOIN keys k "
                           "ON k.id = e.key_id JOIN keysets s ON s.id = k.keyset_id WHERE "
                           "s.name = 'conc' AND e.what = 'transition' GROUP BY e.to_state")
        ev = dict(ev)
        self.assertEqual(ev.get("active"), 1 + ok)
        self.assertEqual(ev.get("retired"), ok)
        # One token key pair per recorded key, and every key in the JWKS.
        ids = inst.token_ids("staging")
        for k in keys:
            self.assertEqual(ids.get(k["token"]["cka_id"]), ["private", "public"])
        self.assertEqual(inst.jwks_kids("staging/conc"), sorted(k["kid"] for k in keys))


if __name__ == "__main__":
    fixture.main()
