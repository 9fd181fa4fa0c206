# SPDX-License-Identifier: Apache-2.0
"""Interop test: for each of the ten JOSE algorithms keymgr supports,

  1. create a fresh SoftHSM token in a temporary directory with `keymgr token init`
     (PINs in mode-0600 files, SOFTHSM2_CONF pointing at a temporary config),
  2. generate a key with `keymgr token keygen`,
  3. export the JWKS with `keymgr token jwks --output`,
  4. sign a JWT with `keymgr token sign`,
  5. verify it with PyJWT AND with the openssl CLI (public key built from the JWK numbers
     with the `cryptography` package, independent of PyJWT),
  6. check that a tampered payload and a tampered signature fail both verifiers,
  7. check the kid against jwcrypto's RFC 7638 thumbprint and that no output carries a PIN
     or a private JWK member.

Usage: /usr/bin/python3 interop_all_algorithms.py PATH-TO-KEYMGR
Prints one line per algorithm and exits non-zero if any algorithm failed.
"""
import base64
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk as jwcrypto_jwk

ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA"]
PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"]
CURVES = {"P-256": (ec.SECP256R1(), 32), "P-384": (ec.SECP384R1(), 48),
          "P-521": (ec.SECP521R1(), 66)}
DIGEST = {"256": "sha256", "384": "sha384", "512": "sha512"}


class Failure(Exception):
    pass


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def check(cond, what):
    if not cond:
        raise Failure(what)


class Token:
    """A SoftHSM token in its own temporary directory, driven through the keymgr CLI."""

    def __init__(self, keymgr, module, label):
        self.keymgr = keymgr
        self.dir = tempfile.mkdtemp(prefix="keymgr-interop-")
        self.label = label
        self.user_pin = "u-" + secrets.token_hex(8)
        self.so_pin = "s-" + secrets.token_hex(8)
        tokens = os.path.join(self.dir, "tokens")
        os.mkdir(tokens, 0o700)
        conf = os.path.join(self.dir, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.user_src = "file:" + self._pin_file("user.pin", self.user_pin)
        self.so_src = "file:" + self._pin_file("so.pin", self.so_pin)
        self.env = dict(os.environ, SOFTHSM2_CONF=conf, KEYMGR_MODULE=module)
        for v in ("KEYMGR_TOKEN", "KEYMGR_PIN_SOURCE"):
            self.env.pop(v, None)

    def _pin_file(self, name, pin):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, pin.encode() + b"\n")
        os.close(fd)
        return path

    def run(self, *args, expect=0):
        p = subprocess.run([self.keymgr, *args], env=self.env, capture_output=True,
                           text=True, timeout=300)
        for pin in (self.user_pin, self.so_pin):
            check(pin not in p.stdout and pin not in p.stderr,
                  f"a PIN appears in the output of keymgr {' '.join(args[:2])}")
        if p.returncode != expect:
            raise Failure(f"keymgr {' '.join(args)} exited {p.returncode} "
                          f"(expected {expect}): {p.stderr.strip()}")
        return p.stdout

    def cli(self, verb, *args):
        common = ["--token", self.label, "--pin-source", self.user_src]
        return self.run("token", verb, *common, *args)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def public_pem(jwk):
    """PEM of the JWK's public key, built from its numbers with `cryptography` alone."""
    kty = jwk["kty"]
    if kty == "RSA":
        key = rsa.RSAPublicNumbers(int.from_bytes(b64d(jwk["e"]), "big"),
                                   int.from_bytes(b64d(jwk["n"]), "big")).public_key()
    elif kty == "EC":
        curve, width = CURVES[jwk["crv"]]
        x, y = b64d(jwk["x"]), b64d(jwk["y"])
        check(len(x) == width and len(y) == width, "EC coordinates not at full width")
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            curve).public_key()
    elif kty == "OKP":
        check(jwk["crv"] == "Ed25519", "OKP curve is not Ed25519")
        key = ed25519.Ed25519PublicKey.from_public_bytes(b64d(jwk["x"]))
    else:
        raise Failure(f"unexpected kty {kty}")
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def openssl_verify(workdir, alg, pem, signing_input, sig):
    """True when the openssl CLI accepts sig (JOSE form) over signing_input."""
    pub = os.path.join(workdir, "pub.pem")
    data = os.path.join(workdir, "data.bin")
    sigf = os.path.join(workdir, "sig.bin")
    with open(pub, "wb") as f:
        f.write(pem)
    with open(data, "wb") as f:
        f.write(signing_input)
    if alg.startswith("ES"):
        half = len(sig) // 2
        sig = encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                   int.from_bytes(sig[half:], "big"))
    with open(sigf, "wb") as f:
        f.write(sig)
    if alg == "EdDSA":
        cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
               "-in", data, "-sigfile", sigf]
    else:
        md = DIGEST[alg[2:]]
        cmd = ["openssl", "dgst", "-" + md, "-verify", pub, "-signature", sigf]
        if alg.startswith("PS"):
            # RFC 7518 3.5: MGF1 with the same hash, salt length = hash length (-1).
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1",
                    "-sigopt", "rsa_mgf1_md:" + md]
        cmd.append(data)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    ok_text = "Verified OK" in p.stdout or "Signature Verified Successfully" in p.stdout
    return p.returncode == 0 and ok_text


def pyjwt_verify(token, jwk, alg):
    """True when PyJWT accepts the token with the JWK; False on a bad signature."""
    key = jwt.PyJWK(jwk, algorithm=alg).key
    try:
        jwt.decode(token, key, algorithms=[alg])
        return True
    except jwt.InvalidSignatureError:
        return False


def tamper_payload(token):
    h, p, s = token.split(".")
    claims = json.loads(b64d(p))
    claims["sub"] = "mallory"
    return ".".join([h, b64e(json.dumps(claims, separators=(",", ":")).encode()), s])


def tamper_signature(token):
    h, p, s = token.split(".")
    sig = bytearray(b64d(s))
    sig[len(sig) // 2] ^= 0x01
    return ".".join([h, p, b64e(bytes(sig))])


def run_alg(keymgr, module, alg):
    tok = Token(keymgr, module, "interop-" + alg.lower())
    try:
        tok.run("token", "init", "--token", tok.label, "--so-pin-source", tok.so_src,
                "--pin-source", tok.user_src)
        bits = ["--bits", "2048"] if alg[:2] in ("RS", "PS") else []
        jwk = json.loads(tok.cli("keygen", "--alg", alg, "--json", *bits))
        kid = jwk["kid"]
        check(jwk["alg"] == alg and jwk["use"] == "sig", "JWK alg/use")
        thumb = jwcrypto_jwk.JWK(**{k: v for k, v in jwk.items()
                                    if k in ("kty", "crv", "x", "y", "n", "e")}).thumbprint()
        check(thumb == kid, f"kid {kid} is not the RFC 7638 thumbprint {thumb} (jwcrypto)")

        out = os.path.join(tok.dir, "jwks.json")
        tok.cli("jwks", "--output", out)
        check(stat.S_IMODE(os.stat(out).st_mode) == 0o644, "JWKS file mode is not 0644")
        with open(out) as f:
            jwks = json.load(f)
        check(len(jwks["keys"]) == 1, "JWKS does not hold exactly the one key")
        for key in jwks["keys"]:
            leaked = [m for m in PRIVATE_MEMBERS if m in key]
            check(not leaked, f"JWKS carries private members {leaked}")
        served = jwks["keys"][0]
        check(served["kid"] == kid, "JWKS kid differs from keygen's")

        claims = {"iss": "https://keymgr.test", "sub": "interop", "alg_under_test": alg}
        token = tok.cli("sign", "--kid", kid, "--claims", json.dumps(claims),
                        "--typ", "JWT").strip()
        header = jwt.get_unverified_header(token)
        check(header == {"alg": alg, "kid": kid, "typ": "JWT"}, f"header {header}")

        # PyJWT, with the key taken from the exported JWKS.
        check(pyjwt_verify(token, served, alg), "PyJWT rejected the token")
        check(jwt.decode(token, jwt.PyJWK(served, algorithm=alg).key,
                         algorithms=[alg]) == claims, "PyJWT decoded other claims")
        # openssl, with a PEM built from the JWK numbers.
        pem = public_pem(served)
        h, p, s = token.split(".")
        signing_input = (h + "." + p).encode()
        check(openssl_verify(tok.dir, alg, pem, signing_input, b64d(s)),
              "openssl rejected the signature")

        # Tampering must fail both verifiers.
        for name, bad in (("payload", tamper_payload(token)),
                          ("signature", tamper_signature(token))):
            check(not pyjwt_verify(bad, served, alg), f"PyJWT accepted a tampered {name}")
            bh, bp, bs = bad.split(".")
            check(not openssl_verify(tok.dir, alg, pem, (bh + "." + bp).encode(), b64d(bs)),
                  f"openssl accepted a tampered {name}")
        return kid
    finally:
        tok.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    keymgr = os.path.abspath(sys.argv[1])
    module = os.environ.get("KEYMGR_TEST_SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
    for tool, path in (("keymgr", keymgr), ("SoftHSM module", module)):
        if not os.path.exists(path):
            print(f"FAIL: {tool} not found at {path}", file=sys.stderr)
            return 1
    if shutil.which("openssl") is None:
        print("FAIL: openssl CLI not found", file=sys.stderr)
        return 1
    print(f"PyJWT {jwt.__version__}, openssl: "
          + subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip())
    passed, failed = [], []
    for alg in ALGS:
        try:
            kid = run_alg(keymgr, module, alg)
            passed.append(alg)
            print(f"PASS {alg:6} kid={kid} (keymgr -> PyJWT + openssl; tampering refused)",
                  flush=True)
        except Exception as e:  # report every algorithm, then fail as a whole
            failed.append(alg)
            print(f"FAIL {alg:6} {e}", flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
    print(f"interop: {len(passed)}/{len(ALGS)} algorithms passed: {' '.join(passed)}")
    if failed:
        print(f"interop: FAILED: {' '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
