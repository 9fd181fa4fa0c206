# SPDX-License-Identifier: Apache-2.0
"""The issuer side with libp11 (docs/verify.md, "Issuers signing through libp11"):

`keymgr key current ENV/NAME --uri` prints the RFC 7512 URI of the active key; an OpenSSL
issuer using libp11's pkcs11 engine (libengine-pkcs11-openssl 0.4.12, `openssl pkeyutl
-engine pkcs11 -keyform engine`, OPENSSL_CONF pointing at a temp config that loads the engine
with SoftHSM as MODULE_PATH) signs a JWT with that key, and the JWT verifies against keymgr's
JWKS with `keymgr verify` and PyJWT.

The ES keys live in environment "issuer", whose token holds EC and RSA keys only: libp11
0.4.12 enumerates no key at all on a token holding an Ed25519 key (PKCS11-NOTES.md).
test_libp11_limits checks the two limits docs/verify.md states, so that a libp11 upgrade that
lifts them is noticed: on the "mixed" token (ES256 + Ed25519) the engine finds no key, and an
RS256 key fails because libp11 signs RSA with raw CKM_RSA_PKCS while keymgr limits each key's
CKA_ALLOWED_MECHANISMS to its one JWS mechanism (CKM_SHA256_RSA_PKCS).

Usage: /usr/bin/python3 test_libp11.py PATH-TO-KEYMGR [unittest options]
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unittest

import jwt
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import b64e  # noqa: E402

KEYMGR = None
ES = {"ES256": ("sha256", 32), "ES512": ("sha512", 66)}


def engines_dir():
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True).stdout
    m = re.search(r'ENGINESDIR: "([^"]+)"', out)
    return m.group(1) if m else "/usr/lib/x86_64-linux-gnu/engines-3"


class Libp11IssuerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = fixture.Installation(KEYMGR, envs=("issuer", "mixed"))
        cls.kid = {}
        for alg in ("ES256", "ES512", "RS256"):
            cls.kid[alg] = cls.inst.create("issuer/" + alg.lower(), "access-token", alg)
        cls.kid["mixed-ES256"] = cls.inst.create("mixed/es256", "access-token", "ES256")
        cls.inst.create("mixed/ed", "access-token", "EdDSA")
        cls.jwks = cls.inst.jwks_file("issuer")
        cls.engine = os.path.join(engines_dir(), "pkcs11.so")
        cls.conf = os.path.join(cls.inst.dir, "openssl-pkcs11.cnf")
        with open(cls.conf, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
                    "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n"
                    f"engine_id = pkcs11\ndynamic_path = {cls.engine}\n"
                    f"MODULE_PATH = {fixture.MODULE}\ninit = 0\n")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def uri(self, ref):
        p = self.inst.run("key", "current", ref, "--uri", ok=True)
        return p.stdout.strip()

    def engine_sign(self, uri, env, digest_bytes):
        """Signs a digest with the key at uri through libp11; returns (rc, DER sig, stderr)."""
        dig = os.path.join(self.inst.dir, "digest.bin")
        out = os.path.join(self.inst.dir, "sig.der")
        with open(dig, "wb") as f:
            f.write(digest_bytes)
        if os.path.exists(out):
            os.unlink(out)
        # The PIN comes from the fixture's pin file (no trailing newline: libp11's
        # pin-source=file: reads the whole file), never from the command line.
        key = uri + ";pin-source=file:" + self.inst.pin_file(env)
        p = subprocess.run(["openssl", "pkeyutl", "-engine", "pkcs11", "-keyform", "engine",
                            "-inkey", key, "-sign", "-in", dig, "-out", out],
                           env=dict(self.inst.env, OPENSSL_CONF=self.conf),
                           capture_output=True, text=True, timeout=120)
        sig = None
        if p.returncode == 0 and os.path.exists(out):
            with open(out, "rb") as f:
                sig = f.read()
        for pin in self.inst.secrets:
            self.assertNotIn(pin, p.stdout + p.stderr)
        return p.returncode, sig, p.stderr

    def issue(self, alg, ref, env, kid):
        """An issuer's JWT, signed by OpenSSL + libp11 with the key keymgr points at."""
        md, width = ES[alg]
        now = int(time.time())
        header = {"alg": alg, "kid": kid, "typ": "at+jwt"}
        claims = {"iss": fixture.ISSUER, "sub": "alice", "client_id": "libp11-issuer",
                  "aud": "api.example.test", "iat": now, "nbf": now, "exp": now + 600,
                  "jti": b64e(os.urandom(16))}
        si = b64e(json.dumps(header).encode()) + "." + b64e(json.dumps(claims).encode())
        rc, der, err = self.engine_sign(self.uri(ref), env, hashlib.new(md, si.encode()).digest())
        if rc != 0:
            return None, claims, err
        r, s = decode_dss_signature(der)  # ECDSA comes back DER; JOSE wants r||s
        sig = r.to_bytes(width, "big") + s.to_bytes(width, "big")
        return si + "." + b64e(sig), claims, err

    def test_key_current_prints_kid_and_uri(self):
        p = self.inst.run("key", "current", "issuer/es256", ok=True)
        self.assertEqual(p.stdout.strip(), self.kid["ES256"])
        uri = self.uri("issuer/es256")
        shown = json.loads(self.inst.run("key", "show", self.kid["ES256"], "--env", "issuer",
                                         "--json", ok=True).stdout)
        cka_id = shown["token"]["cka_id"]
        self.assertTrue(uri.startswith("pkcs11:"), uri)
        attrs = dict(part.split("=", 1) for part in uri[len("pkcs11:"):].split(";"))
        self.assertEqual(attrs["token"], "vt-issuer")
        self.assertEqual(attrs["serial"], shown["token"]["serial"])
        self.assertEqual(attrs["type"], "private")
        self.assertEqual(attrs["id"], "".join("%" + cka_id[i:i + 2].upper()
                                              for i in range(0, len(cka_id), 2)))
        self.assertNotIn("pin", uri)
        j = json.loads(self.inst.run("key", "current", "issuer/es256", "--json",
                                     ok=True).stdout)
        self.assertEqual(j, {"env": "issuer", "keyset": "es256", "kid": self.kid["ES256"],
                             "alg": "ES256", "uri": uri})

    def test_key_current_errors(self):
        p = self.inst.run("key", "current", "issuer/nope")
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown key set issuer/nope", p.stderr)
        p = self.inst.run("key", "current", "issuer/Bad..Name")
        self.assertEqual(p.returncode, 2)
        p = self.inst.run("key", "current")
        self.assertEqual(p.returncode, 2)
        self.inst.run("keyset", "create", "issuer/empty", "--no-key", "--alg", "ES256",
                      "--owner", "t",
                      "--purpose", "access-token", ok=True)
        p = self.inst.run("key", "current", "issuer/empty", "--uri")
        self.assertEqual(p.returncode, 1)
        self.assertIn("has no active key", p.stderr)

    def test_openssl_engine_issuer_verifies_against_keymgr_jwks(self):
        with open(self.jwks) as f:
            keys = jwt.PyJWKSet.from_dict(json.load(f))
        for alg in ES:
            with self.subTest(alg=alg):
                kid = self.kid[alg]
                token, claims, err = self.issue(alg, "issuer/" + alg.lower(), "issuer", kid)
                self.assertIsNotNone(token, f"libp11 could not sign: {err}")
                p = self.inst.verify(token, self.jwks, alg, "at+jwt")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout), claims)
                self.assertEqual(jwt.decode(token, keys[kid].key, algorithms=[alg],
                                            audience="api.example.test",
                                            issuer=fixture.ISSUER), claims)
                # And the class rules still bind it: another typ is refused.
                p = self.inst.verify(token, self.jwks, alg, "logout+jwt")
                self.assertEqual(p.returncode, 1)
                self.assertIn("typ:", p.stderr)

    def test_libp11_limits(self):
        # A token holding an Ed25519 key: libp11 0.4.12 enumerates no key at all, so even
        # the ES256 key of that token cannot be used.
        token, _, err = self.issue("ES256", "mixed/es256", "mixed", self.kid["mixed-ES256"])
        if token is not None:
            self.fail("libp11 now signs on a token holding an Ed25519 key: update "
                      "docs/verify.md and this test")
        self.assertIn("Unable to enumerate private keys", err)
        # RS256: libp11 signs RSA with CKM_RSA_PKCS, which keymgr's keys do not allow.
        digest = hashlib.sha256(b"x").digest()
        rc, _, err = self.engine_sign(self.uri("issuer/rs256"), "issuer", digest)
        self.assertNotEqual(rc, 0, "libp11 signed with an RS256 key: update docs/verify.md")
        self.assertIn("Mechanism invalid", err)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
