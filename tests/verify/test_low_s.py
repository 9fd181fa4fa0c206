# SPDX-License-Identifier: Apache-2.0
"""ECDSA malleability (docs/verify.md, "High-S signatures"):

- JOSE accepts r||s and r||(n - s): from one token anyone makes a second, byte-different
  token that PyJWT (and `keymgr verify` without --low-s) accept as well: the attack;
- every ES256/ES384/ES512 token `keymgr sign` makes has s <= n/2 (40 tokens per algorithm:
  without the normalisation the chance that all are low is 2^-40);
- `keymgr verify --low-s` refuses the flipped token with a line naming the check, and accepts
  keymgr's own.

Usage: /usr/bin/python3 test_low_s.py PATH-TO-KEYMGR [unittest options]
"""
import json
import os
import re
import subprocess
import sys
import unittest

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import b64d, b64e  # noqa: E402

KEYMGR = None
CURVES = {"ES256": "prime256v1", "ES384": "secp384r1", "ES512": "secp521r1"}


def curve_order(name):
    """The curve's order as the openssl command line prints it (not typed in by hand)."""
    out = subprocess.run(["openssl", "ecparam", "-name", name, "-param_enc", "explicit",
                          "-text", "-noout"], capture_output=True, text=True, check=True).stdout
    block = out.split("Order:")[1].split("Cofactor")[0]
    return int(re.sub(r"[^0-9a-f]", "", block.lower()), 16)


ORDER = {alg: curve_order(name) for alg, name in CURVES.items()}
CURVE = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def split(token, alg):
    h, p, s = token.split(".")
    sig = b64d(s)
    half = len(sig) // 2
    return h, p, int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"), half


def flipped(token, alg):
    """The same signature with s replaced by n - s: a second valid encoding."""
    h, p, r, s, half = split(token, alg)
    s2 = ORDER[alg] - s
    return f"{h}.{p}." + b64e(r.to_bytes(half, "big") + s2.to_bytes(half, "big"))


class LowSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for alg, order in ORDER.items():
            assert order.bit_length() == CURVE[alg].key_size, alg
        cls.inst = fixture.Installation(KEYMGR, envs=("development",))
        cls.kid, cls.jwks = {}, {}
        for alg in ORDER:
            ref = "development/alg-" + alg.lower()
            cls.kid[alg] = cls.inst.create(ref, "access-token", alg)
            cls.jwks[alg] = cls.inst.jwks_file(ref)

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def sign(self, alg):
        claims = {"sub": "alice", "client_id": "low-s", "aud": "api.example.test"}
        p = self.inst.sign("development/alg-" + alg.lower(), claims, "--ttl", "10m")
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def pyjwt_accepts(self, token, alg):
        with open(self.jwks[alg]) as f:
            keys = jwt.PyJWKSet.from_dict(json.load(f))
        jwt.decode(token, keys[self.kid[alg]].key, algorithms=[alg],
                   audience="api.example.test", issuer=fixture.ISSUER)

    def test_keymgr_signs_low_s_only(self):
        for alg in ORDER:
            with self.subTest(alg=alg):
                for _ in range(40):
                    _, _, _, s, _ = split(self.sign(alg), alg)
                    self.assertLessEqual(s, ORDER[alg] // 2)

    def test_flipped_token_is_the_attack_and_low_s_refuses_it(self):
        for alg in ORDER:
            with self.subTest(alg=alg):
                token = self.sign(alg)
                other = flipped(token, alg)
                self.assertNotEqual(other, token)
                # Malleability: a second token, accepted by a standard verifier.
                self.pyjwt_accepts(other, alg)
                p = self.inst.verify(other, self.jwks[alg], alg, "at+jwt")
                self.assertEqual(p.returncode, 0, p.stderr)
                # --low-s: keymgr's own token passes, the second encoding does not.
                p = self.inst.verify(token, self.jwks[alg], alg, "at+jwt", "api.example.test",
                                     fixture.ISSUER, "--low-s")
                self.assertEqual(p.returncode, 0, p.stderr)
                p = self.inst.verify(other, self.jwks[alg], alg, "at+jwt", "api.example.test",
                                     fixture.ISSUER, "--low-s")
                self.assertEqual(p.returncode, 1)
                self.assertIn("signature: its ECDSA s is in the high half", p.stderr)
                self.assertEqual(p.stdout, "")

    def test_low_s_has_no_effect_on_other_algorithms(self):
        ref = "development/alg-eddsa"
        self.inst.create(ref, "access-token", "EdDSA")
        jwks = self.inst.jwks_file(ref)
        claims = {"sub": "alice", "client_id": "low-s", "aud": "api.example.test"}
        p = self.inst.sign(ref, claims, "--ttl", "10m")
        p = self.inst.verify(p.stdout.strip(), jwks, "EdDSA", "at+jwt", "api.example.test",
                             fixture.ISSUER, "--low-s")
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
