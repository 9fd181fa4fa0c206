# SPDX-License-Identifier: Apache-2.0
"""Small JWT verifiers behind an HTTP endpoint on 127.0.0.1, for the probe suite.

  /usr/bin/python3 verifier.py --jwks FILE --alg ALG --iss ISS --aud AUD --typ TYP
                               --max-ttl SECONDS --log FILE MODE [FLAGS]

prints its port on the first line of stdout, then answers every GET, HEAD or POST: 200 when
the bearer token in Authorization verifies, 401 otherwise (400 without a token). Each
request is appended to --log as a JSON line ({"token": the bearer token or null, "jti": its
jti, "ok": bool}).

MODE
  strict   PyJWT (python3-jwt) with every check on: the pinned algorithm, the kid in the
           JWKS, iss, aud, exp, nbf and iat required, plus what PyJWT 2.6 leaves to its caller:
           the header typ, crit refused, duplicate JSON members refused, exp - iat at most
           --max-ttl. jku, x5u and jwk headers are never followed.
  lax      PyJWT with its audience and expiry checks switched off, and nothing more than
           PyJWT does by itself (the kid in the JWKS, the pinned algorithm, iss).
  keymgr   `keymgr verify` (the path given with --keymgr) with the same pins and --max-ttl:
           keymgr's own strict reference verifier behind a tiny HTTP shim.
  custom   hand-written, checking the claims as strictly as strict, with the verification
           mistakes that modern libraries refuse to make, one flag each:
             --alg-from-header     the algorithm is the header's, the key the kid's in the
                                   JWKS, and an HS* key is that public key's --hmac-key form
             --hmac-key pem|jwk    the public key as PEM text, or its JWK as published
             --accept-none         alg none needs no signature (with --alg-from-header)
             --follow-jku          a jku header's JWKS is fetched and its key used
             --follow-x5u          an x5u header's certificate is fetched and its key used
             --fetch-jku           a jku header's URL is fetched (and ignored)
             --embedded-jwk        a jwk header's key is used
             --kid-dir DIR         HS256 keys are read from the file DIR/KID
             --kid-sql             HS256 keys are looked up in SQLite with the kid pasted in
             --no-signature        the signature is not checked (alg and kid still are)
             --ecdsa-trailing      an ECDSA signature longer than r||s is cut to r||s
             --psychic             an ECDSA signature of r = s = 0 verifies (CVE-2022-21449)
  --open (any mode) answers 200 to everything, with a token or without.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import jwt
from jwt.algorithms import get_default_algorithms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

ALGS = get_default_algorithms()


class Refused(Exception):
    pass


def b64d(s):
    if "=" in s:
        raise Refused("padding")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def no_dups(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise Refused(f"duplicate member {k}")
        seen[k] = v
    return seen


def parse(token, strict_json=True):
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused("not three parts")
    hook = no_dups if strict_json else None
    header = json.loads(b64d(parts[0]), object_pairs_hook=hook)
    payload = json.loads(b64d(parts[1]), object_pairs_hook=hook)
    return parts, header, payload


class Verifier:
    def __init__(self, a):
        self.a = a
        with open(a.jwks) as f:
            self.jwks = json.load(f)
        self.keys = {k["kid"]: k for k in self.jwks["keys"]}

    def key_of(self, kid):
        if kid not in self.keys:
            raise Refused("unknown kid")
        return jwt.PyJWK(self.keys[kid]).key

    # The claims and header rules strict and custom share (what PyJWT 2.6 does not do).
    def extra_checks(self, header, payload):
        a = self.a
        if "crit" in header:
            raise Refused("crit")
        if str(header.get("typ", "")).lower() != a.typ.lower():
            raise Refused("typ")
        if not isinstance(payload.get("iat"), int) or not isinstance(payload.get("exp"), int):
            raise Refused("iat and exp required")
        if payload["exp"] - payload["iat"] > a.max_ttl:
            raise Refused("lifetime")

    def strict(self, token):
        a = self.a
        _, header, payload = parse(token)
        self.extra_checks(header, payload)
        jwt.decode(token, self.key_of(header.get("kid")), algorithms=[a.alg], audience=a.aud,
                   issuer=a.iss, leeway=30,
                   options={"require": ["exp", "iat", "nbf", "iss", "aud"]})

    def lax(self, token):
        a = self.a
        header = jwt.get_unverified_header(token)
        jwt.decode(token, self.key_of(header.get("kid")), algorithms=[a.alg], issuer=a.iss,
                   options={"verify_aud": False, "verify_exp": False})

    def claims(self, payload):
        a, now = self.a, time.time()
        if payload.get("iss") != a.iss:
            raise Refused("iss")
        aud = payload.get("aud")
        if a.aud not in (aud if isinstance(aud, list) else [aud]):
            raise Refused("aud")
        if not isinstance(payload.get("exp"), int) or now >= payload["exp"] + 30:
            raise Refused("exp")
        if isinstance(payload.get("nbf"), int) and now + 30 < payload["nbf"]:
            raise Refused("nbf")

    def keymgr(self, token):
        a = self.a
        p = subprocess.run([a.keymgr, "verify", "--jwks", a.jwks, "--alg", a.alg, "--iss", a.iss,
                            "--aud", a.aud, "--typ", a.typ, "--max-ttl", f"{a.max_ttl}s", "-"],
                           input=token, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Refused(p.stderr.strip())

    def fetch(self, url):
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read()

    def custom_key(self, header, alg):
        """The key the hand-written verifier believes in, by its flags."""
        a, kid = self.a, header.get("kid")
        if a.fetch_jku and "jku" in header:
            self.fetch(header["jku"])
        if a.embedded_jwk and "jwk" in header:
            return jwt.PyJWK(header["jwk"]).key
        if a.follow_jku and "jku" in header:
            keys = json.loads(self.fetch(header["jku"]))["keys"]
            return jwt.PyJWK(next(k for k in keys if k.get("kid") == kid)).key
        if a.follow_x5u and "x5u" in header:
            return x509.load_pem_x509_certificate(self.fetch(header["x5u"])).public_key()
        if alg.startswith("HS"):
            if a.kid_dir:
                with open(os.path.join(a.kid_dir, kid), "rb") as f:
                    return f.read()
            if a.kid_sql:
                db = sqlite3.connect(":memory:")
                db.execute("CREATE TABLE keys (kid TEXT, secret TEXT)")
                row = db.execute(f"SELECT secret FROM keys WHERE kid = '{kid}'").fetchone()
                if row is None:
                    raise Refused("unknown kid")
                return row[0].encode()
            if a.hmac_key == "jwk":
                return json.dumps(self.keys[kid], separators=(",", ":")).encode()
            if a.hmac_key == "pem":
                return self.key_of(kid).public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo)
            raise Refused("HMAC")
        return self.key_of(kid)

    def custom(self, token):
        a = self.a
        parts, header, payload = parse(token)
        self.extra_checks(header, payload)
        self.claims(payload)
        alg = header.get("alg") if a.alg_from_header else a.alg
        if header.get("alg") != alg:
            raise Refused("alg")
        signing_input = (parts[0] + "." + parts[1]).encode()
        sig = b64d(parts[2])
        if alg == "none":
            if a.accept_none and sig == b"":
                return
            raise Refused("none")
        key = self.custom_key(header, alg)
        if a.no_signature:
            return
        if alg.startswith("HS"):
            want = hmac.new(key, signing_input, hashlib.sha256).digest()
            if not hmac.compare_digest(want, sig):
                raise Refused("HMAC signature")
            return
        if alg.startswith("ES"):
            w = {"ES256": 32, "ES384": 48, "ES512": 66}[alg]
            if a.ecdsa_trailing:
                sig = sig[:2 * w]
            if a.psychic and sig == bytes(2 * w):
                return
        if not ALGS[alg].verify(signing_input, key, sig):
            raise Refused("signature")

    def check(self, token):
        getattr(self, self.a.mode)(token)


class Handler(http.server.BaseHTTPRequestHandler):
    verifier = None
    log = None
    lock = threading.Lock()

    def answer(self):
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        ok, jti = False, None
        if token is not None:
            try:
                jti = json.loads(b64d(token.split(".")[1])).get("jti")
            except Exception:
                pass
            try:
                self.verifier.check(token)
                ok = True
            except Exception:
                ok = False
        ok = ok or self.verifier.a.open
        with self.lock, open(self.log, "a") as f:
            f.write(json.dumps({"token": token, "jti": jti, "ok": ok}) + "\n")
        code = 200 if ok else 401 if token is not None else 400
        body = b"ok\n" if ok else b"no\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = answer

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["strict", "lax", "custom", "keymgr"])
    p.add_argument("--keymgr")
    for name in ("--jwks", "--alg", "--iss", "--aud", "--typ", "--log"):
        p.add_argument(name, required=True)
    p.add_argument("--max-ttl", type=int, required=True)
    for flag in ("--alg-from-header", "--accept-none", "--follow-jku", "--follow-x5u",
                 "--fetch-jku", "--embedded-jwk", "--kid-sql", "--no-signature",
                 "--ecdsa-trailing", "--psychic", "--open"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--hmac-key", choices=["pem", "jwk"])
    p.add_argument("--kid-dir")
    a = p.parse_args()
    Handler.verifier = Verifier(a)
    Handler.log = a.log
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
