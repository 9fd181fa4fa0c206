# SPDX-License-Identifier: Apache-2.0
"""Every algorithm: a JWT signed by `keymgr sign` (through the claims policy, with the key
in a real SoftHSM token) verifies with PyJWT and with `keymgr verify` against the key set's
JWKS; a tampered token, a wrong pinned algorithm and a foreign key set's JWKS fail
`keymgr verify`.

Usage: /usr/bin/python3 test_algorithms.py PATH-TO-KEYMGR [unittest options]
"""
import json
import os
import sys
import unittest

import jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import b64d, b64e  # noqa: E402

KEYMGR = None
# A pinned algorithm the token must NOT satisfy: same key type where there is one.
OTHER = {"RS256": "RS384", "RS384": "PS384", "RS512": "RS256", "PS256": "RS256",
         "PS384": "PS512", "PS512": "PS256", "ES256": "ES384", "ES384": "ES256",
         "ES512": "ES256", "EdDSA": "ES256"}


class AlgorithmsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = fixture.Installation(KEYMGR, envs=("development",))
        cls.kid, cls.jwks = {}, {}
        for alg in fixture.ALGS:
            ref = "development/alg-" + alg.lower()
            cls.kid[alg] = cls.inst.create(ref, "access-token", alg)
            cls.jwks[alg] = cls.inst.jwks_file(ref)

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def sign(self, alg):
        claims = {"sub": "alice", "client_id": "cli-" + alg, "aud": "api.example.test"}
        p = self.inst.sign("development/alg-" + alg.lower(), claims, "--ttl", "10m")
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip(), claims

    def test_every_algorithm_verifies_with_pyjwt_and_keymgr(self):
        self.assertEqual(len(fixture.ALGS), 10)
        for alg in fixture.ALGS:
            with self.subTest(alg=alg):
                token, claims = self.sign(alg)
                header = jwt.get_unverified_header(token)
                self.assertEqual(header, {"alg": alg, "kid": self.kid[alg], "typ": "at+jwt"})
                with open(self.jwks[alg]) as f:
                    keys = jwt.PyJWKSet.from_dict(json.load(f))
                got = jwt.decode(token, keys[self.kid[alg]].key, algorithms=[alg],
                                 audience="api.example.test", issuer=fixture.ISSUER)
                for k, v in claims.items():
                    self.assertEqual(got[k], v)
                p = self.inst.verify(token, self.jwks[alg], alg, "at+jwt")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout), got)

    def test_tampering_and_wrong_pins_fail_keymgr_verify(self):
        for alg in fixture.ALGS:
            with self.subTest(alg=alg):
                token, _ = self.sign(alg)
                h, pl, s = token.split(".")
                claims = json.loads(b64d(pl))
                claims["sub"] = "mallory"
                bad_payload = h + "." + b64e(json.dumps(claims).encode()) + "." + s
                sig = bytearray(b64d(s))
                sig[len(sig) // 2] ^= 1
                bad_sig = h + "." + pl + "." + b64e(bytes(sig))
                for bad in (bad_payload, bad_sig):
                    p = self.inst.verify(bad, self.jwks[alg], alg, "at+jwt")
                    self.assertEqual(p.returncode, 1)
                    self.assertIn("signature: does not verify", p.stderr)
                p = self.inst.verify(token, self.jwks[alg], OTHER[alg], "at+jwt")
                self.assertEqual(p.returncode, 1)
                self.assertIn(f"alg: '{alg}' does not match the pinned {OTHER[alg]}", p.stderr)
                # Another key set's JWKS does not hold this kid.
                p = self.inst.verify(token, self.jwks[OTHER[alg]], alg, "at+jwt")
                self.assertEqual(p.returncode, 1)
                self.assertIn("is not in the JWKS", p.stderr)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
