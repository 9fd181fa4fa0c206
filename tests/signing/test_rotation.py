# SPDX-License-Identifier: Apache-2.0
"""Signing during rotations: no token from a key that is no longer active, none unverifiable.

Two client threads sign continuously through keymgrd, each on one persistent connection,
while the main thread forces rotations (`keymgr rotate --now --force`, then `keymgr tick`)
and keymgrd's own scheduler rotates on the test policy (rotation_period 8s), with a third
thread fetching the JWKS from keymgrd's HTTP listener the whole time. Then:
  - every token verifies with PyJWT against the first JWKS fetched after it was signed
    (zero failures), with its exp checked against iat (the tokens live 2 s, so they are
    checked for signature, kid, typ, iss and aud, not for being unexpired at check time);
  - no token requested after a forced rotation's tick returned carries a key that was
    active before that rotation (the daemon swapped its key before answering the tick);
  - the daemon logged no failed sign request.
The main thread waits for tokens, not for time: before each rotation (and at the end) it
waits until PER_KEY tokens were requested after the previous tick returned, and at the end
for a JWKS fetched after them, so every key signs and every token meets a later JWKS however
slow the run is (a fixed sleep made the counts of tokens and kids depend on the machine).

Usage: /usr/bin/python3 test_rotation.py KEYMGR KEYMGRD
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, read_frame,  # noqa
                             run_tests, wait_for)
import json  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402

import jwt  # noqa: E402

ROTATIONS = 8
PER_KEY = 6         # tokens requested after each tick returned, before the next rotation


def signer(sock_path, stop, out, errors):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock_path)
    body = json.dumps({"op": "sign", "keyset": "dev/api", "claims": CLAIMS,
                       "ttl": "2s"}).encode()
    frame = struct.pack(">I", len(body)) + body
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            s.sendall(frame)
            reply = read_frame(s)
            t1 = time.monotonic()
            if not reply.get("ok"):
                errors.append(reply)
                continue
            out.append((t0, t1, reply["jwt"]))
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))
    finally:
        s.close()


def fetcher(d, stop, snaps):
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            doc, _ = d.jwks("/dev/.well-known/jwks.json")
            snaps.append((t0, {k["kid"]: k for k in doc["keys"]}))
        except Exception:  # noqa: BLE001 - a missed fetch only means a later snapshot
            pass
        time.sleep(0.02)


def run(keymgr, keymgrd):
    s = SignSetup(keymgr, keymgrd)
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s)
        d.wait_event("signing-key", keyset="api", result="ok")
        tokens, errors, snaps = [], [], []
        rotations = []      # (monotonic time the tick returned, kids active before it)
        stop = threading.Event()

        def signed_since(t):
            """PER_KEY tokens were requested after t (or a signer failed: it stops)."""
            return errors or sum(1 for t0, _, _ in list(tokens) if t0 > t) >= PER_KEY

        def hammer():
            threads = [threading.Thread(target=signer, args=(s.socket, stop, tokens, errors))
                       for _ in range(2)]
            threads.append(threading.Thread(target=fetcher, args=(d, stop, snaps)))
            last = time.monotonic()
            for t in threads:
                t.start()
            seen_active = set()
            try:
                for _ in range(ROTATIONS):
                    wait_for(lambda: signed_since(last), "tokens of the current key",
                             timeout=120, step=0.02)
                    seen_active |= {k["kid"] for k in s.keys("dev/api")
                                    if k["state"] in ("active", "retired", "removed",
                                                      "destroyed")}
                    before = set(seen_active)
                    s.run("rotate", "dev/api", "--now", "--force")
                    s.run("tick")
                    last = time.monotonic()
                    rotations.append((last, before))
                wait_for(lambda: signed_since(last), "tokens of the last key", timeout=120,
                         step=0.02)
                mark = time.monotonic()
                wait_for(lambda: any(ts > mark for ts, _ in list(snaps)),
                         "a JWKS fetched after the last tokens", timeout=60, step=0.02)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            check(not errors, f"sign requests failed during rotations: {errors[:3]}")
            check(len(tokens) >= (ROTATIONS + 1) * PER_KEY, f"only {len(tokens)} tokens signed")

        def every_token_verifies():
            bad = []
            kids = set()
            for t0, t1, tok in tokens:
                snap = next((keys for ts, keys in snaps if ts >= t1), None)
                if snap is None:
                    continue     # signed after the last fetch
                header = jwt.get_unverified_header(tok)
                kids.add(header["kid"])
                jwk = snap.get(header["kid"])
                if jwk is None or header.get("typ") != "at+jwt":
                    bad.append((header, "kid not in the JWKS fetched after signing"))
                    continue
                try:
                    c = jwt.decode(tok, jwt.PyJWK.from_dict(jwk).key, algorithms=[jwk["alg"]],
                                   audience="api.test", issuer="https://issuer.test",
                                   options={"verify_exp": False, "verify_iat": False,
                                            "verify_nbf": False})
                    if not 0 < c["exp"] - c["iat"] <= 2:
                        bad.append((header, f"lifetime {c['exp'] - c['iat']}"))
                except jwt.PyJWTError as e:
                    bad.append((header, str(e)))
            check(not bad, f"{len(bad)} of {len(tokens)} tokens fail: {bad[:3]}")
            # each rotation's tokens were signed before the next one began: one kid each
            check(len(kids) >= ROTATIONS + 1, f"tokens carry only {len(kids)} kids over "
                  f"{ROTATIONS} rotations")

        def no_stale_key_after_tick():
            stale = []
            for done, before in rotations:
                stale += [tok for t0, _, tok in tokens
                          if t0 > done and jwt.get_unverified_header(tok)["kid"] in before]
            check(not stale, f"{len(stale)} tokens signed with a key retired earlier")
            check(not d.events("sign", result="failed"), "failed sign requests logged")

        rc = run_tests([("hammer signing while rotating", hammer),
                        ("every token verifies against the JWKS fetched after it",
                         every_token_verifies),
                        ("no retired key signs after the daemon's tick", no_stale_key_after_tick)])
        check(d.stop() == 0, "keymgrd did not exit 0")
        return rc
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
