# SPDX-License-Identifier: Apache-2.0
"""keymgrd rotates a key set twice while simulated verifiers poll its JWKS.

Policy (seconds): jwks_max_age 2, clock_skew 1, publish_lead 3, rotation_period 8,
max_token_ttl 2, retire_retention 5, destroy_after 3.

Three verifiers watch /dev/.well-known/jwks.json:
  - "cache":   keeps its copy for max-age (from Cache-Control), never refetches early;
  - "refetch": the same, but refetches once on an unknown kid (OIDC Core 10.1.1);
  - "fresh":   fetches before every check (sees what is served right now).
A signer calls `keymgr sign dev/api` over and over (exp = iat + max_token_ttl). Each token is
verified at once by every verifier with PyJWT against the JWKS as that verifier holds it, and
again by each verifier later, while the token is still valid. Checked:
  - every token verifies (zero failures), so the new kid was in each cached JWKS before it
    signed, and the old kid stayed until no token it signed was valid any more;
  - the key set really rotated twice (three signing kids), each successor appeared in the JWKS
    before its first token, and each retired kid left the JWKS only after its tokens expired.

Usage: /usr/bin/python3 test_rotation.py KEYMGR KEYMGRD
"""
import re
import sys
import time

import jwt

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Failure, Setup, check, run_tests  # noqa: E402

PATH = "/dev/.well-known/jwks.json"
LEEWAY = 1  # clock_skew


class Verifier:
    def __init__(self, daemon, name, cache=True, refetch=False):
        self.d, self.name, self.cache, self.refetch = daemon, name, cache, refetch
        self.keys, self.fetched, self.max_age = None, 0.0, 0
        self.failures = []
        self.checked = 0

    def fetch(self):
        doc, h = self.d.jwks(PATH, verifier=self.name)
        m = re.search(r"max-age=(\d+)", h.get("cache-control", ""))
        check(m is not None, "JWKS without max-age")
        self.max_age = int(m.group(1))
        self.keys = {k["kid"]: k for k in doc["keys"]}
        self.fetched = time.monotonic()

    def current(self):
        if not self.cache or self.keys is None or \
           time.monotonic() - self.fetched >= self.max_age:
            self.fetch()
        return self.keys

    def verify(self, token, when):
        kid = jwt.get_unverified_header(token)["kid"]
        keys = self.current()
        if kid not in keys and self.refetch:
            self.fetch()
            keys = self.keys
        self.checked += 1
        if kid not in keys:
            self.failures.append(f"{self.name} ({when}): kid {kid} not in its JWKS "
                                 f"{sorted(keys)}")
            return
        try:
            jwt.decode(token, key=jwt.PyJWK(keys[kid]).key, algorithms=[keys[kid]["alg"]],
                       leeway=LEEWAY, audience="api.test", issuer="https://issuer.test")
        except jwt.ExpiredSignatureError:
            pass  # checked too late by this loop: not a verification failure
        except jwt.InvalidTokenError as e:
            self.failures.append(f"{self.name} ({when}): {kid}: {e}")


def test_rotate_twice_with_caching_verifiers(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd)
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        vs = [Verifier(d, "cache"), Verifier(d, "refetch", refetch=True),
              Verifier(d, "fresh", cache=False)]
        first_seen = {}      # kid -> time the JWKS first showed it (polled each round)
        last_seen = {}       # kid -> last time the JWKS showed it
        first_token = {}     # kid -> time of its first token
        last_exp = {}        # kid -> exp of its last token
        live = []            # (exp, token)
        deadline = time.monotonic() + 120
        signing = True
        while signing or live:
            check(time.monotonic() < deadline, "no two rotations within 120 s")
            now = time.time()
            for kid in d.kids(PATH):
                first_seen.setdefault(kid, now)
                last_seen[kid] = now
            if signing:
                tok = s.sign("dev/api", ttl="2s")
                kid = jwt.get_unverified_header(tok)["kid"]
                exp = jwt.decode(tok, options={"verify_signature": False})["exp"]
                first_token.setdefault(kid, time.time())
                last_exp[kid] = exp
                for v in vs:
                    v.verify(tok, "at signing")
                live.append((exp, tok))
            live = [(e, t) for e, t in live if e > time.time()]
            for e, t in live:
                for v in vs:
                    v.verify(t, "later")
            # Two rotations; then the tokens still valid are checked until they expire.
            signers = sorted(first_token, key=first_token.get)
            if len(signers) >= 3:
                signing = False
            time.sleep(0.2)
        # The second signing key retires at the second rotation; wait for its removal.
        signers = sorted(first_token, key=first_token.get)
        while signers[1] in d.kids(PATH):
            last_seen[signers[1]] = time.time()
            check(time.monotonic() < deadline, "the retired kid never left the JWKS")
            time.sleep(0.2)
        fails = [f for v in vs for f in v.failures]
        check(not fails, f"{len(fails)} verification failures: {fails[:5]}")
        check(all(v.checked > 20 for v in vs), "too few verifications")
        signers = sorted(first_token, key=first_token.get)
        for kid in signers[1:]:
            check(first_seen[kid] < first_token[kid],
                  f"kid {kid} signed before the JWKS showed it")
        for kid in signers[:2]:
            check(last_seen[kid] >= last_exp[kid] - 1,
                  f"kid {kid} left the JWKS while a token it signed was valid")
            check(kid not in d.kids(PATH), f"retired kid {kid} never left the JWKS")
        print(f"  rotations: {len(signers) - 1}, verifications: "
              f"{', '.join(f'{v.name} {v.checked}' for v in vs)}, failures: 0")
        check(d.stop() == 0, "keymgrd did not exit 0 on SIGTERM")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    k, kd = sys.argv[1], sys.argv[2]
    sys.exit(run_tests([
        ("rotation.rotate-twice-with-caching-verifiers",
         lambda: test_rotate_twice_with_caching_verifiers(k, kd)),
    ]))
