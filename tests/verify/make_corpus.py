#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the hostile-token corpus of `keymgr verify` into tests/verify/corpus/.

  /usr/bin/python3 tests/verify/make_corpus.py [OUTDIR]

Every token is built by hand (base64url and JSON assembled byte by byte, so duplicate members,
padding and odd headers survive) and signed with keys made fresh on each run; only their
public halves are kept, in corpus/jwks.json. corpus/manifest.json lists, for each token file,
the options keymgr verify gets, the exit status it must give, and a piece of the one-line
reason that names the failed check. tests/verify/test_corpus.py runs them all.

The claims use fixed dates: valid tokens expire in 2100, the expired one in 2020, so the
corpus stays valid without regeneration. Regenerate after changing this script and commit
the result (signatures differ on every run; the verdicts must not).
"""
import base64
import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISS = "https://issuer.corpus.test"
AUD = "api.corpus.test"
TYP = "at+jwt"
EXP_2100 = 4102444800
IAT = 1700000000


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def uint(n, width=None):
    b = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return b.rjust(width, b"\0") if width else b


def ec_jwk(key):
    nums = key.public_key().public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": b64e(uint(nums.x, 32)), "y": b64e(uint(nums.y, 32))}
    return jwk


def rsa_jwk(key):
    nums = key.public_key().public_numbers()
    return {"e": b64e(uint(nums.e)), "kty": "RSA", "n": b64e(uint(nums.n))}


def thumbprint(jwk):
    """RFC 7638: the required members in lexicographic order, no white space."""
    req = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canon = "{" + ",".join(f'"{k}":"{jwk[k]}"' for k in req) + "}"
    return b64e(hashlib.sha256(canon.encode()).digest())


def es256(key, data):
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return uint(r, 32) + uint(s, 32)


def rs256(key, data):
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class Corpus:
    def __init__(self, outdir):
        self.outdir = outdir
        self.entries = []
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.attacker = ec.generate_private_key(ec.SECP256R1())
        self.ec_jwk = ec_jwk(self.ec)
        self.rsa_jwk = rsa_jwk(self.rsa)
        self.ec_kid = thumbprint(self.ec_jwk)
        self.rsa_kid = thumbprint(self.rsa_jwk)
        self.attacker_jwk = ec_jwk(self.attacker)
        self.attacker_kid = thumbprint(self.attacker_jwk)

    def claims(self, **over):
        c = {"iss": ISS, "sub": "corpus", "aud": AUD, "exp": EXP_2100, "iat": IAT, "nbf": IAT}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return compact(c)

    def header(self, alg="ES256", kid=None, typ=TYP, **extra):
        h = {"alg": alg, "kid": self.ec_kid if kid is None else kid, "typ": typ}
        for k, v in extra.items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        return compact(h)

    def signed(self, header_text, payload_text, signer=None):
        signer = signer or (lambda d: es256(self.ec, d))
        si = b64e(header_text.encode()) + "." + b64e(payload_text.encode())
        return si + "." + b64e(signer(si.encode()))

    def add(self, name, token, reason, expect=1, why="", **opts):
        path = os.path.join(self.outdir, name + ".jwt")
        with open(path, "w") as f:
            f.write(token + "\n")
        entry = {"name": name, "file": name + ".jwt", "expect": expect, "reason": reason,
                 "why": why}
        entry.update(opts)
        self.entries.append(entry)

    def build(self):
        good = self.signed(self.header(), self.claims())
        self.add("valid-es256", good, "", expect=0, why="control: a well-formed ES256 token")
        self.add("valid-rs256",
                 self.signed(self.header("RS256", self.rsa_kid), self.claims(),
                             lambda d: rs256(self.rsa, d)),
                 "", expect=0, alg="RS256", why="control: a well-formed RS256 token")
        self.add("valid-aud-array",
                 self.signed(self.header(), self.claims(aud=["other.corpus.test", AUD])),
                 "", expect=0, why="control: aud as an array that names us")
        self.add("valid-typ-media-type",
                 self.signed(self.header(typ="application/AT+JWT"), self.claims()),
                 "", expect=0, why="control: typ compared as a media type (RFC 7515 4.1.9)")

        # alg none, in two spellings.
        for name, alg in (("alg-none", "none"), ("alg-none-uppercase", "NONE")):
            si = b64e(self.header(alg).encode()) + "." + b64e(self.claims().encode())
            self.add(name, si + ".", "alg: '" + alg + "' is refused",
                     why="unsigned token (RFC 8725 3.1)")
        # RS256 -> HS256 with the public key (PEM) as the HMAC secret.
        pem = self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        self.add("hs256-public-key",
                 self.signed(self.header("HS256", self.rsa_kid), self.claims(),
                             lambda d: hmac.new(pem, d, hashlib.sha256).digest()),
                 "alg: HMAC algorithm 'HS256' is refused", alg="RS256",
                 why="key confusion: RS256 key used as an HMAC secret")
        self.add("alg-not-pinned",
                 self.signed(self.header("RS256", self.rsa_kid), self.claims(),
                             lambda d: rs256(self.rsa, d)),
                 "alg: 'RS256' does not match the pinned ES256",
                 why="validly signed, but not with the algorithm the caller pinned")
        self.add("kid-of-other-alg",
                 self.signed(self.header("ES256", self.rsa_kid), self.claims()),
                 "key: the JWK of kid", why="header alg fits the pin, the kid names an RSA key")

        # Headers that would let the token pick its own key.
        self.add("jku", self.signed(self.header(jku="https://attacker.example/jwks.json"),
                                    self.claims()),
                 "header: 'jku' is refused", why="key URL chosen by the token")
        self.add("x5u", self.signed(self.header(x5u="https://attacker.example/cert.pem"),
                                    self.claims()),
                 "header: 'x5u' is refused", why="certificate URL chosen by the token")
        self.add("x5c", self.signed(self.header(x5c=["MIIBszCCAVmgAwIBAgIUZm9yZ2Vk"]),
                                    self.claims()),
                 "header: 'x5c' is refused", why="certificate chain carried by the token")
        self.add("jwk-embedded",
                 self.signed(self.header(kid=self.attacker_kid, jwk=self.attacker_jwk),
                             self.claims(), lambda d: es256(self.attacker, d)),
                 "header: 'jwk' is refused", why="the token carries its own (attacker) key")
        self.add("crit", self.signed(self.header(crit=["exp"], exp=EXP_2100), self.claims()),
                 "crit: refused", why="a critical extension the verifier cannot understand")

        # kid: validated as an opaque short string before any lookup.
        for name, kid in (("kid-path", "../../../../etc/passwd"),
                          ("kid-sql", "x' OR '1'='1"),
                          ("kid-sql-comment", "1; DROP TABLE keys; --"),
                          ("kid-too-long", "A" * 200),
                          ("kid-empty", "")):
            self.add(name, self.signed(self.header(kid=kid), self.claims()),
                     "kid: not an opaque short string", why="hostile kid: " + kid[:24])
        self.add("kid-not-string", self.signed(self.header(kid=12345), self.claims()),
                 "kid: not an opaque short string", why="kid of the wrong JSON type")
        self.add("kid-missing", self.signed(compact({"alg": "ES256", "typ": TYP}),
                                            self.claims()),
                 "kid: missing", why="no kid to look up")
        self.add("kid-unknown", self.signed(self.header(kid=self.attacker_kid), self.claims(),
                                            lambda d: es256(self.attacker, d)),
                 "is not in the JWKS", why="well-formed kid that the JWKS does not hold")

        # Time.
        self.add("expired", self.signed(self.header(),
                                        self.claims(exp=1600000000, iat=1599999000,
                                                    nbf=1599999000)),
                 "exp: expired at 2020-09-13T12:26:40Z", why="exp in 2020")
        self.add("not-yet-valid", self.signed(self.header(), self.claims(nbf=4000000000)),
                 "nbf: not valid before 2096-", why="nbf in 2096")
        self.add("iat-future", self.signed(self.header(), self.claims(iat=4000000000)),
                 "iat: issued in the future", why="iat in 2096")
        self.add("exp-missing", self.signed(self.header(), self.claims(exp=None)),
                 "exp: missing", why="a token without an end")
        self.add("exp-string", self.signed(self.header(), self.claims(exp="4102444800")),
                 "exp: not a NumericDate", why="exp of the wrong JSON type")

        # Class: typ, iss, aud.
        self.add("wrong-typ", self.signed(self.header(typ="JWT"), self.claims()),
                 "typ: 'JWT' is not the expected at+jwt", why="an ID-token-style typ")
        self.add("typ-logout", self.signed(self.header(typ="logout+jwt"), self.claims()),
                 "typ: 'logout+jwt' is not the expected at+jwt", why="a logout token")
        self.add("typ-missing", self.signed(self.header(typ=None), self.claims()),
                 "typ: missing", why="no explicit type")
        self.add("wrong-iss", self.signed(self.header(),
                                          self.claims(iss="https://evil.example")),
                 "iss: another issuer", why="issuer mismatch")
        self.add("wrong-aud", self.signed(self.header(), self.claims(aud="other.corpus.test")),
                 "aud: the token is not for api.corpus.test", why="audience mismatch")
        self.add("aud-missing", self.signed(self.header(), self.claims(aud=None)),
                 "aud: missing", why="no audience")

        # Format: truncation and base64url.
        h, p, s = good.split(".")
        self.add("truncated-two-segments", h + "." + p, "format: 2 segments",
                 why="signature segment cut off")
        self.add("truncated-mid-payload", good[:len(h) + 1 + len(p) // 2],
                 "format: 2 segments", why="cut in the middle of the payload")
        self.add("truncated-signature", h + "." + p + "." + s[:-2],
                 "signature: 63 bytes, expected 64 for ES256",
                 why="signature one byte shorter than r||s")
        self.add("bad-base64-padding", b64e(self.header().encode()) + "==." + p + "." + s,
                 "format: header is not strict base64url", why="padding is not base64url")
        self.add("bad-base64-alphabet", h + "." + p + "." + s[:10] + "+/" + s[12:],
                 "format: signature is not strict base64url", why="'+' and '/' are base64")
        # Same bytes, but the unused low bits of the last character set: not canonical.
        last = s[-1]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        bumped = alphabet[alphabet.index(last) ^ 1]
        self.add("bad-base64-noncanonical", h + "." + p + "." + s[:-1] + bumped,
                 "format: signature is not strict base64url",
                 why="non-zero trailing bits (two encodings of one signature)")
        self.add("five-segments", good + ".AAAA.BBBB", "format: more than three segments",
                 why="a JWE-shaped token")
        self.add("header-not-object", self.signed(compact(["ES256"]), self.claims()),
                 "header: not a JSON object", why="header is an array")

        # Duplicate JSON members (parsers differ on which one wins).
        dup = '{"alg":"ES256","kid":"%s","typ":"at+jwt","alg":"none"}' % self.ec_kid
        self.add("duplicate-header-alg", self.signed(dup, self.claims()),
                 "header: not valid JSON: duplicate object key", why="two alg members")
        dup = '{"alg":"ES256","kid":"%s","kid":"%s","typ":"at+jwt"}' % (self.ec_kid,
                                                                        self.attacker_kid)
        self.add("duplicate-header-kid", self.signed(dup, self.claims()),
                 "header: not valid JSON: duplicate object key", why="two kid members")
        dup_payload = self.claims()[:-1] + ',"aud":"evil.example"}'
        self.add("duplicate-payload-aud", self.signed(self.header(), dup_payload),
                 "payload: not valid JSON: duplicate object key", why="two aud members")

        # Signature.
        tampered = json.loads(self.claims())
        tampered["sub"] = "mallory"
        self.add("tampered-payload", h + "." + b64e(compact(tampered).encode()) + "." + s,
                 "signature: does not verify", why="payload changed after signing")
        der = self.ec.sign((h + "." + p).encode(), ec.ECDSA(hashes.SHA256()))
        self.add("es256-der-signature", h + "." + p + "." + b64e(der),
                 "bytes, expected 64 for ES256", why="DER instead of r||s (RFC 7518 3.4)")

    def write(self):
        with open(os.path.join(self.outdir, "jwks.json"), "w") as f:
            keys = [dict(self.ec_jwk, kid=self.ec_kid, alg="ES256", use="sig"),
                    dict(self.rsa_jwk, kid=self.rsa_kid, alg="RS256", use="sig")]
            f.write(compact({"keys": keys}) + "\n")
        manifest = {"iss": ISS, "aud": AUD, "typ": TYP, "alg": "ES256", "jwks": "jwks.json",
                    "tokens": self.entries}
        with open(os.path.join(self.outdir, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(outdir, exist_ok=True)
    for name in os.listdir(outdir):
        if name.endswith(".jwt"):
            os.unlink(os.path.join(outdir, name))
    c = Corpus(outdir)
    c.build()
    c.write()
    print(f"wrote {len(c.entries)} tokens, jwks.json and manifest.json to {outdir}")


if __name__ == "__main__":
    main()
