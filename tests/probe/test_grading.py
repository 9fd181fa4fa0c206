# SPDX-License-Identifier: Apache-2.0
"""keymgr probe against small verifiers on 127.0.0.1 (verifier.py): it must grade each one
exactly, that is name every check it fails and no other.

  - strict (PyJWT with every check, plus typ, crit, duplicates and the lifetime): clean, for
    ES256, RS256 (the RSA padding swap applies) and EdDSA key sets;
  - keymgr's own `keymgr verify` behind a tiny HTTP shim: clean;
  - lax (PyJWT with its audience and expiry checks off): expired, wrong-audience, the other
    classes' typ, the over-long lifetime and the unknown crit;
  - hand-written vulnerable verifiers, one mistake each: the algorithm from the header with
    HMAC keyed by the public key (PEM, or JWK) and alg none, jku and x5u followed, a jwk
    header trusted, kid as a file name or in SQL, no signature check (ES and RSA), trailing
    ECDSA bytes ignored, the psychic signature; and one that fetches jku without using it,
    which is a warning (an SSRF signal), not a failure.
Exit status 1 exactly when something failed.

Usage: /usr/bin/python3 test_grading.py PATH-TO-KEYMGR
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import Verifier, graded  # noqa: E402

ES = "development/alg-es256"
RS = "development/alg-rs256"
ED = "development/alg-eddsa"
# Checks that never apply to these access-token key sets of one audience.
NOT_APPLICABLE = {"other-audience", "typ-access-token"}


class Grading(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = fixture.Installation(fixture.KEYMGR)
        cls.inst.create(ES, "access-token", "ES256")
        cls.inst.create(RS, "access-token", "RS256")
        cls.inst.create(ED, "access-token", "EdDSA")
        cls.kid_dir = os.path.join(cls.inst.dir, "hmac-keys")
        os.mkdir(cls.kid_dir)

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def grade(self, ref, mode, *flags, alg="ES256", fail=(), warn=()):
        """Probes a verifier of this kind; the report must name exactly fail and warn."""
        v = Verifier(self.inst, ref, mode, *flags, alg=alg)
        try:
            p, report = self.inst.probe(ref, v.url)
            self.assertIsNotNone(report, p.stderr)
            self.assertEqual(graded(report, "FAIL"), sorted(fail), p.stderr)
            self.assertEqual(graded(report, "warn"), sorted(warn))
            self.assertEqual(graded(report, "error"), [])
            self.assertFalse(report["stopped"])
            self.assertEqual(p.returncode, 1 if fail else 0, p.stderr)
            self.assertEqual(report["result"], "vulnerable" if fail else "clean")
            for name in fail:
                self.assertIn(f"keymgr: {name}: the endpoint accepted a hostile token",
                              p.stderr)
            for name in warn:
                self.assertIn(f"keymgr: {name}: refused, but the endpoint fetched", p.stderr)
            # Every check but the n/a ones was sent, and answered.
            answered = {c["name"] for c in report["checks"] if c["sent"]}
            na = set(graded(report, "n/a"))
            self.assertEqual(answered | na, {c["name"] for c in report["checks"]})
            self.assertTrue(NOT_APPLICABLE <= na, na)
            self.assertEqual(len(v.requests()), len(answered))
            return report
        finally:
            v.close()

    def test_strict_is_clean(self):
        r = self.grade(ES, "strict")
        self.assertEqual(sorted(graded(r, "n/a")), sorted(NOT_APPLICABLE |
                                                          {"rsa-pss-pkcs1-swap"}))
        r = self.grade(RS, "strict", alg="RS256")
        self.assertEqual(sorted(graded(r, "n/a")), sorted(NOT_APPLICABLE | {
            "ecdsa-r-zero", "ecdsa-s-zero", "ecdsa-zero"}))
        self.grade(ED, "strict", alg="EdDSA")

    def test_keymgr_verify_is_clean(self):
        self.grade(ES, "keymgr", "--keymgr", fixture.KEYMGR)
        self.grade(RS, "keymgr", "--keymgr", fixture.KEYMGR, alg="RS256")

    def test_pyjwt_without_audience_and_expiry_checks(self):
        self.grade(ES, "lax", fail=["expired", "wrong-audience", "typ-id-token",
                                    "typ-logout-token", "overlong-lifetime", "crit-unknown"])

    def test_algorithm_from_the_header(self):
        self.grade(ES, "custom", "--alg-from-header", "--hmac-key", "pem", "--accept-none",
                   fail=["alg-none", "hs256-public-pem"])
        self.grade(RS, "custom", "--alg-from-header", "--hmac-key", "jwk", alg="RS256",
                   fail=["hs256-public-jwk"])

    def test_keys_from_the_token(self):
        self.grade(ES, "custom", "--follow-jku", fail=["jku"])
        self.grade(ES, "custom", "--follow-x5u", fail=["x5u"])
        self.grade(ES, "custom", "--embedded-jwk", fail=["jwk-embedded"])
        # Fetched but not used: refused, and reported as an SSRF signal.
        r = self.grade(ES, "custom", "--fetch-jku", warn=["jku"])
        jku = next(c for c in r["checks"] if c["name"] == "jku")
        self.assertTrue(jku["fetched"])
        self.assertIn("fetched", jku["note"])

    def test_kid_injections(self):
        self.grade(ES, "custom", "--alg-from-header", "--kid-dir", self.kid_dir,
                   fail=["kid-path-traversal"])
        self.grade(ES, "custom", "--alg-from-header", "--kid-sql", fail=["kid-sql-injection"])

    def test_signature_checks(self):
        self.grade(ES, "custom", "--no-signature",
                   fail=["wrong-key", "signature-length", "ecdsa-r-zero", "ecdsa-s-zero",
                         "ecdsa-zero"])
        self.grade(RS, "custom", "--alg-from-header", "--no-signature", alg="RS256",
                   fail=["wrong-key", "signature-length", "rsa-pss-pkcs1-swap"])
        self.grade(ES, "custom", "--ecdsa-trailing", fail=["signature-length"])
        self.grade(ES, "custom", "--psychic", fail=["ecdsa-zero"])


if __name__ == "__main__":
    fixture.main()
