# SPDX-License-Identifier: Apache-2.0
"""The class boundary through the keymgr executable (docs/claims.md):

- keymgr sign refuses, with one clear line and no output, a token outside its key set's
  class: events in an access token, a wrong aud, exp beyond max_token_ttl, caller-set
  iat/nbf/jti, a key set with no issuer configured;
- each class signs with its own typ, and keymgr verify / PyJWT accept it;
- a token of one key set fails keymgr verify configured for another class (typ or aud).
The "caller not on the allowed list" case belongs to keymgrd's signing socket (SO_PEERCRED)
and is tested with the daemon, not here.

Usage: /usr/bin/python3 test_classes.py PATH-TO-KEYMGR [unittest options]
"""
import hashlib
import json
import os
import sys
import time
import unittest

import jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402

KEYMGR = None
BCL = "http://schemas.openid.net/event/backchannel-logout"


def soon(seconds=600):
    return int(time.time()) + seconds


class ClassBoundaryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = fixture.Installation(KEYMGR, envs=("production",))
        cls.kids = {}
        for name, (purpose, _auds) in fixture.ENVIRONMENTS["production"].items():
            cls.kids[name] = cls.inst.create("production/" + name, purpose)
        cls.inst.create("production/no-issuer", "access-token")
        cls.jwks = cls.inst.jwks_file("production")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def store_digest(self):
        with open(os.path.join(self.inst.dir, "production.db"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def refused(self, ref, claims, part, *extra):
        before = self.store_digest()
        p = self.inst.sign(ref, claims, *extra)
        self.assertEqual(p.returncode, 1, f"signed: {p.stdout}")
        self.assertEqual(p.stdout, "")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(part, lines[0])
        self.assertEqual(self.store_digest(), before, "a refused signing changed the store")
        return lines[0]

    def at_claims(self, **over):
        c = {"sub": "alice", "client_id": "cli-1", "aud": "api.example.test", "exp": soon()}
        c.update(over)
        return c

    # --- refusals -----------------------------------------------------------------------

    def test_access_token_with_events_refused(self):
        msg = self.refused("production/api", self.at_claims(events={BCL: {}}),
                           "claim 'events' is reserved for security-event-token and "
                           "logout-token tokens")
        self.assertIn("production/api signs access-token tokens (typ at+jwt)", msg)

    def test_wrong_aud_refused(self):
        self.refused("production/api", self.at_claims(aud="client-1"),
                     "claim 'aud' value 'client-1' is not an allowed audience of key set "
                     "production/api (allowed: api.example.test, admin.example.test)")
        self.refused("production/api", self.at_claims(aud=["api.example.test", "evil"]),
                     "'evil' is not an allowed audience")
        c = self.at_claims()
        del c["aud"]
        self.refused("production/api", c, "claim 'aud' is required")

    def test_exp_beyond_max_token_ttl_refused(self):
        self.refused("production/api", self.at_claims(exp=soon(2 * 3600)),
                     "exceeds max_token_ttl (1h) of key set production/api: refused, "
                     "not shortened")
        c = self.at_claims()
        del c["exp"]
        self.refused("production/api", c, "max_token_ttl (1h) of key set production/api",
                     "--ttl", "2h")
        self.refused("production/api", c, "claim 'exp' is required")
        self.refused("production/api", self.at_claims(exp=soon(-10)), "born expired")

    def test_keymgr_owned_claims_refused(self):
        for claim, value in (("iat", int(time.time())), ("nbf", 0), ("jti", "mine")):
            self.refused("production/api", self.at_claims(**{claim: value}),
                         f"claim '{claim}' is set by keymgr")

    def test_wrong_iss_refused(self):
        self.refused("production/api", self.at_claims(iss="https://evil.example"),
                     "claim 'iss' must be the issuer of key set production/api "
                     f"({fixture.ISSUER})")

    def test_keyset_without_issuer_refused(self):
        self.refused("production/no-issuer", self.at_claims(),
                     "key set production/no-issuer has no issuer configured: set "
                     "environments.production.keysets.no-issuer.issuer")

    def test_other_classes_reserved_claims_refused(self):
        self.refused("production/api", self.at_claims(nonce="n-1"),
                     "claim 'nonce' is reserved for id-token")
        self.refused("production/logout",
                     {"sub": "alice", "aud": "client-1", "exp": soon(), "nonce": "n",
                      "events": {BCL: {}}},
                     "claim 'nonce' is forbidden in logout tokens")
        self.refused("production/logout", {"sub": "alice", "aud": "client-1", "exp": soon()},
                     "claim 'events' is required in logout tokens")
        self.refused("production/events",
                     {"aud": "receiver.example.test", "exp": soon(), "events": {BCL: {}}},
                     "belongs in a logout-token key set")
        self.refused("production/idt",
                     {"sub": "a", "aud": "client-1", "exp": soon(), "events": {"urn:e": {}}},
                     "claim 'events' is reserved")

    def test_bad_input_usage(self):
        p = self.inst.run("sign", "production/api", "--claims", "{}", "--ttl", "soon")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--ttl", p.stderr)
        p = self.inst.run("sign", "production/api", "--claims", "{\"sub\":")
        self.assertEqual(p.returncode, 1)
        self.assertIn("claims are not valid JSON", p.stderr)
        p = self.inst.run("sign", "production/api", "--claims",
                          json.dumps(self.at_claims())[:-1] + ',"sub":"bob"}')
        self.assertEqual(p.returncode, 1)
        self.assertIn("duplicate", p.stderr)
        p = self.inst.run("sign", "production/nope", "--claims", json.dumps(self.at_claims()))
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown key set production/nope", p.stderr)

    # --- each class, its typ, and the cross-class failures --------------------------------

    def sign_ok(self, ref, claims, *extra):
        p = self.inst.sign(ref, claims, *extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def verify(self, token, typ, aud):
        return self.inst.verify(token, self.jwks, "ES256", typ, aud)

    def test_each_class_signs_with_its_typ(self):
        cases = {
            "api": (self.at_claims(scope="read"), "at+jwt", "api.example.test"),
            "idt": ({"sub": "alice", "aud": "client-1", "exp": soon(), "nonce": "n-1"},
                    "JWT", "client-1"),
            "logout": ({"sid": "s-1", "aud": "client-1", "exp": soon(),
                        "events": {BCL: {}}}, "logout+jwt", "client-1"),
            "events": ({"aud": "receiver.example.test", "exp": soon(),
                        "events": {"urn:example:event:reset": {"subject": "alice"}}},
                       "secevent+jwt", "receiver.example.test"),
        }
        with open(self.jwks) as f:
            jwks = jwt.PyJWKSet.from_dict(json.load(f))
        for name, (claims, typ, aud) in cases.items():
            with self.subTest(keyset=name):
                token = self.sign_ok("production/" + name, claims)
                header = jwt.get_unverified_header(token)
                self.assertEqual(header, {"alg": "ES256", "kid": self.kids[name], "typ": typ})
                p = self.verify(token, typ, aud)
                self.assertEqual(p.returncode, 0, p.stderr)
                got = json.loads(p.stdout)
                self.assertEqual(got["iss"], fixture.ISSUER)
                self.assertEqual(got["iat"], got["nbf"])
                self.assertLessEqual(got["exp"] - got["iat"], 3600)
                self.assertEqual(len(got["jti"]), 22)
                for k, v in claims.items():
                    self.assertEqual(got[k], v)
                dec = jwt.decode(token, jwks[self.kids[name]].key, algorithms=["ES256"],
                                 audience=aud, issuer=fixture.ISSUER)
                self.assertEqual(dec, got)

    def test_ttl_sets_exp(self):
        c = self.at_claims()
        del c["exp"]
        token = self.sign_ok("production/api", c, "--ttl", "10m")
        got = json.loads(self.verify(token, "at+jwt", "api.example.test").stdout)
        self.assertEqual(got["exp"] - got["iat"], 600)

    def test_token_fails_verify_for_another_class(self):
        at = self.sign_ok("production/api", self.at_claims())
        logout = self.sign_ok("production/logout", {"sub": "alice", "aud": "client-1",
                                                    "exp": soon(), "events": {BCL: {}}})
        idt = self.sign_ok("production/idt", {"sub": "alice", "aud": "client-1",
                                              "exp": soon()})
        cases = [
            (at, "logout+jwt", "client-1", "typ: 'at+jwt' is not the expected logout+jwt"),
            (at, "JWT", "api.example.test", "typ: 'at+jwt' is not the expected JWT"),
            (at, "at+jwt", "client-1", "aud: the token is not for client-1"),
            (logout, "at+jwt", "client-1", "typ: 'logout+jwt' is not the expected at+jwt"),
            (logout, "JWT", "client-1", "typ: 'logout+jwt' is not the expected JWT"),
            (idt, "at+jwt", "api.example.test", "typ: 'JWT' is not the expected at+jwt"),
            (idt, "logout+jwt", "client-1", "typ: 'JWT' is not the expected logout+jwt"),
        ]
        for token, typ, aud, reason in cases:
            with self.subTest(typ=typ, aud=aud, reason=reason):
                p = self.verify(token, typ, aud)
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertEqual(p.stdout, "")
                self.assertIn(reason, p.stderr)
        # And each verifies where it belongs.
        self.assertEqual(self.verify(at, "at+jwt", "admin.example.test").returncode, 1)
        self.assertEqual(self.verify(at, "at+jwt", "api.example.test").returncode, 0)
        self.assertEqual(self.verify(logout, "logout+jwt", "client-1").returncode, 0)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
