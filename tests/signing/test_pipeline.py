# SPDX-License-Identifier: Apache-2.0
"""Pipelined sign requests (docs/control-protocol.md, "Pipelining"), end to end through keymgrd.

A client may send several requests on one connection before reading any reply; keymgrd
answers every one, in request order, and batches replies of requests it already holds:
  - 24 sign requests in one write, on an ES256 and an RS256 key set: 24 replies, in order
    (each token's sub names its request), each verifies with PyJWT against the served JWKS,
    no two share a jti;
  - a pipeline with bad requests in the middle (a refused claim, an unknown op, a missing
    key set, a bad ttl, a key set the caller may not use) and a status request (answered by
    the main thread): each gets its own reply in its place, the good ones around them are
    signed as if alone, the connection stays usable;
  - 300 requests written before any reply is read: all answered in order;
  - a frame that is not JSON in the middle: the requests before it are answered, it gets
    its bad_request reply, then the connection is closed (the documented end of a
    connection after a bad frame), and keymgrd goes on serving others.

Usage: /usr/bin/python3 test_pipeline.py KEYMGR KEYMGRD
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, closed_by_peer,  # noqa: E402,E501
                             connect, frame, jwks_keys,
                             read_frame, run_tests, verify)


def sign_req(keyset, sub, **extra):
    return dict({"op": "sign", "keyset": keyset, "claims": dict(CLAIMS, sub=sub),
                 "ttl": "2s"}, **extra)


def check_signed(reply, sub, keys, what):
    check(reply.get("ok") is True and list(reply) == ["ok", "jwt"], f"{what}: {reply}")
    # The fixture's max_token_ttl is 2 s: a long pipeline outlives its first tokens (under
    # valgrind, say), so exp is checked by value rather than against the clock.
    _, claims = verify(reply["jwt"], keys, check_time=False)
    check(claims["exp"] - claims["iat"] == 2, f"{what}: exp {claims['exp']} iat {claims['iat']}")
    check(claims["sub"] == sub, f"{what}: reply for {claims['sub']!r}, expected {sub!r} "
          "(out of order)")
    return claims["jti"]


def run(keymgr, keymgrd):
    s = SignSetup(keymgr, keymgrd, keysets=("api", "rsa", "other"),
                  signers={"api": "{ users: [ root ] }", "rsa": "{ users: [ root ] }",
                           "other": "{ users: [ nobody ] }"},
                  # No scheduled rotation: each case verifies its tokens against the JWKS it
                  # fetched first. With the 8 s test policy a pipeline that waited seconds
                  # behind its status/unknown-op request (answered by the main thread, busy
                  # generating successors under ASan) got tokens of a key activated after
                  # that fetch (correctly: served for publish_lead before it signed).
                  policy={"rotation_period": "10m"})
    d = None
    try:
        s.keyset_create("dev/api")
        s.keyset_create("dev/rsa", "RS256")
        s.keyset_create("dev/other")
        d = Daemon(s)
        for ks in ("api", "rsa"):
            d.wait_event("signing-key", keyset=ks, result="ok")
        sock = s.socket

        def many_in_one_write():
            keys = jwks_keys(d)
            for keyset in ("dev/api", "dev/rsa"):
                subs = [f"user-{i:02d}" for i in range(24)]
                c = connect(sock, 60)
                try:
                    c.sendall(b"".join(frame(sign_req(keyset, sub)) for sub in subs))
                    replies = [read_frame(c) for _ in subs]
                    jtis = [check_signed(r, sub, keys, f"{keyset} #{i}")
                            for i, (r, sub) in enumerate(zip(replies, subs))]
                    check(len(set(jtis)) == len(jtis), f"{keyset}: repeated jti")
                    # The connection still serves a request sent alone afterwards.
                    c.sendall(frame(sign_req(keyset, "after")))
                    check_signed(read_frame(c), "after", keys, f"{keyset}: after the pipeline")
                finally:
                    c.close()

        def bad_requests_in_the_middle():
            keys = jwks_keys(d)
            reqs = [
                (sign_req("dev/api", "a"), "a"),
                (dict(sign_req("dev/api", "x"), claims=dict(CLAIMS, aud="nope")),
                 "policy_denied"),
                (sign_req("dev/rsa", "b"), "b"),
                ({"op": "nope"}, "bad_request"),
                (sign_req("dev/api", "c"), "c"),
                ({"op": "sign", "claims": CLAIMS, "ttl": 60}, "bad_request"),
                (sign_req("dev/api", "d"), "d"),
                (sign_req("dev/api", "x", ttl="soon"), "bad_request"),
                (sign_req("dev/api", "e"), "e"),
                (sign_req("dev/other", "x"), "denied"),
                ({"op": "status"}, "status"),
                (sign_req("dev/api", "f"), "f"),
            ]
            c = connect(sock, 60)
            try:
                c.sendall(b"".join(frame(r) for r, _ in reqs))
                for i, (req, want) in enumerate(reqs):
                    reply = read_frame(c)
                    if want == "status":
                        check(reply.get("ok") is True and "environments" in reply,
                              f"#{i} status: {str(reply)[:200]}")
                    elif want in ("policy_denied", "bad_request", "denied"):
                        check(reply.get("ok") is False and reply.get("code") == want and
                              reply.get("error"), f"#{i}: expected {want}, got {reply}")
                    else:
                        check_signed(reply, want, keys, f"#{i}")
                # Each refusal is the same as the request gets alone.
                alone = call(sock, reqs[1][0])
                check(alone.get("code") == "policy_denied", f"alone: {alone}")
            finally:
                c.close()

        def written_before_any_read():
            keys = jwks_keys(d)
            subs = [f"n{i:03d}" for i in range(300)]
            data = b"".join(frame(sign_req("dev/api", sub)) for sub in subs)
            check(len(data) < 100 * 1024, f"{len(data)} bytes")
            c = connect(sock, 60)
            try:
                c.sendall(data)
                for i, sub in enumerate(subs):
                    check_signed(read_frame(c), sub, keys, f"#{i}")
            finally:
                c.close()

        def bad_frame_in_the_middle():
            keys = jwks_keys(d)
            c = connect(sock, 60)
            try:
                c.sendall(frame(sign_req("dev/api", "before")) + frame(b"not json") +
                          frame(sign_req("dev/api", "never")))
                check_signed(read_frame(c), "before", keys, "the request before the bad frame")
                r = read_frame(c)
                check(r.get("ok") is False and r.get("code") == "bad_request" and
                      "not a JSON object" in r.get("error", ""), f"bad frame: {r}")
                check(closed_by_peer(c), "connection left open after a bad frame")
            finally:
                c.close()
            check_signed(call(sock, sign_req("dev/api", "next")), "next", keys,
                         "another connection afterwards")
            check(d.proc.poll() is None, "keymgrd exited")

        return run_tests([("24 sign requests in one write, in order", many_in_one_write),
                          ("bad requests in the middle of a pipeline",
                           bad_requests_in_the_middle),
                          ("300 requests written before any reply is read",
                           written_before_any_read),
                          ("a bad frame in the middle ends the connection",
                           bad_frame_in_the_middle)])
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
