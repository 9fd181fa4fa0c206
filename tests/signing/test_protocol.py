# SPDX-License-Identifier: Apache-2.0
"""The signing socket's framing and its two forms of claims, end to end through keymgrd.

  - claims given as a JSON object (checked as parsed with the request) and as a string
    holding the same object (parsed by the claims layer, as `keymgr sign` sends them) sign
    the same token: same header, same claim names in the same order, same values except the
    ones keymgr sets per token (iat, nbf, exp, jti); and for each bad input both forms are
    refused with the same code and the same words;
  - the success reply is exactly {"ok":true,"jwt":JWT} (one JSON object, two members);
  - framing: several requests written at once (one send) are all answered, in order; a
    request written one byte at a time is answered; a request larger than the reader's first
    buffer (50 KiB of claims) is answered and the connection then serves small ones; a
    length over the 64 KiB limit, a NUL inside a frame, and a frame cut short by the client
    are refused or dropped without disturbing other connections; the start of a frame sent
    with the previous one is held to the frame deadline, not to the idle time.

Usage: /usr/bin/python3 test_protocol.py KEYMGR KEYMGRD
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, closed_by_peer,  # noqa: E402,E501
                             connect, frame, jwks_keys,
                             read_frame, run_tests, verify)

KEYMGR_SET = ("iat", "nbf", "exp", "jti")

BAD = [
    ("wrong aud", dict(CLAIMS, aud="nope"), "policy_denied", "not an allowed audience"),
    ("events in an access token", dict(CLAIMS, events={"x": {}}), "policy_denied",
     "reserved for"),
    ("iat given", dict(CLAIMS, iat=1), "policy_denied", "set by keymgr"),
    ("client_id missing", {"sub": "alice", "aud": "api.test"}, "policy_denied", "client_id"),
    ("iss of another issuer", dict(CLAIMS, iss="https://evil.test"), "policy_denied",
     "must be the issuer"),
]


def sign_req(claims, ttl="2s"):
    return {"op": "sign", "keyset": "dev/api", "claims": claims, "ttl": ttl}


def run(keymgr, keymgrd):
    s = SignSetup(keymgr, keymgrd, keysets=("api",))
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s)
        d.wait_event("signing-key", keyset="api", result="ok")
        sock = s.socket

        def same_token_both_forms():
            keys = jwks_keys(d)
            obj = call(sock, sign_req(CLAIMS))
            txt = call(sock, sign_req(json.dumps(CLAIMS)))
            check(obj.get("ok") is True and txt.get("ok") is True, f"{obj} / {txt}")
            h1, c1 = verify(obj["jwt"], keys)
            h2, c2 = verify(txt["jwt"], keys)
            check(h1 == h2, f"headers differ: {h1} vs {h2}")
            check(list(c1) == list(c2), f"claim order differs: {list(c1)} vs {list(c2)}")
            check(list(c1)[:1] == ["iss"], f"iss is not first: {list(c1)}")
            for k in c1:
                if k not in KEYMGR_SET:
                    check(c1[k] == c2[k], f"claim {k}: {c1[k]!r} vs {c2[k]!r}")
            check(c1["jti"] != c2["jti"], "two tokens share a jti")

        def same_refusals_both_forms():
            for name, claims, code, words in BAD:
                a = call(sock, sign_req(claims))
                b = call(sock, sign_req(json.dumps(claims)))
                for r in (a, b):
                    check(r.get("ok") is False and r.get("code") == code,
                          f"{name}: expected {code}, got {r}")
                    check(words in r.get("error", ""), f"{name}: reason {r.get('error')!r}")
                check(a["error"] == b["error"],
                      f"{name}: object and string differ:\n {a['error']}\n {b['error']}")
            # Only the string form can fail to parse; the object form cannot be a non-object.
            r = call(sock, sign_req("[1]"))
            check(r.get("code") == "malformed" and "JSON object" in r.get("error", ""), str(r))

        def success_reply_shape():
            c = connect(sock)
            try:
                c.sendall(frame(sign_req(CLAIMS)))
                raw = c.recv(4, socket.MSG_WAITALL)
                n = struct.unpack(">I", raw)[0]
                body = c.recv(n, socket.MSG_WAITALL)
            finally:
                c.close()
            check(len(body) == n, "short reply")
            reply = json.loads(body)
            check(list(reply) == ["ok", "jwt"] and reply["ok"] is True, f"reply {reply}")
            check(body == json.dumps(reply, separators=(",", ":")).encode(),
                  f"reply not compact JSON: {body[:80]!r}")
            verify(reply["jwt"], jwks_keys(d))

        def pipelined_and_split():
            keys = jwks_keys(d)
            c = connect(sock)
            try:
                # Three requests in one write: a good one, a refused one, a good one.
                c.sendall(frame(sign_req(CLAIMS)) + frame(sign_req(dict(CLAIMS, aud="x"))) +
                          frame(sign_req(dict(CLAIMS, sub="bob"))))
                r1, r2, r3 = read_frame(c), read_frame(c), read_frame(c)
                check(r1.get("ok") is True and r3.get("ok") is True, f"{r1} / {r3}")
                check(r2.get("code") == "policy_denied", f"second reply: {r2}")
                check(verify(r1["jwt"], keys)[1]["sub"] == "alice", "first reply out of order")
                check(verify(r3["jwt"], keys)[1]["sub"] == "bob", "third reply out of order")
                # One request a byte at a time on the same connection.
                for b in frame(sign_req(dict(CLAIMS, sub="carol"))):
                    c.send(bytes([b]))
                r4 = read_frame(c)
                check(r4.get("ok") is True and verify(r4["jwt"], keys)[1]["sub"] == "carol",
                      f"split request: {r4}")
            finally:
                c.close()

        def large_then_small():
            keys = jwks_keys(d)
            big = dict(CLAIMS, scope=" ".join(f"scope.{i:05d}" for i in range(4500)))
            req = frame(sign_req(big))
            check(50000 < len(req) < 64 * 1024, f"request of {len(req)} bytes")
            c = connect(sock)
            try:
                c.sendall(req)
                r = read_frame(c)
                check(r.get("ok") is True, f"large request: {str(r)[:200]}")
                check(verify(r["jwt"], keys)[1]["scope"] == big["scope"], "scope changed")
                c.sendall(frame(sign_req(CLAIMS)))
                r = read_frame(c)
                check(r.get("ok") is True, f"small request after a large one: {r}")
            finally:
                c.close()

        def bad_frames():
            # Over the limit: refused, then the connection is closed (the stream is out of
            # step); nothing after the length is read.
            c = connect(sock)
            try:
                c.sendall(struct.pack(">I", 64 * 1024 + 1) + b"{")
                r = read_frame(c)
                check(r.get("ok") is False and r.get("code") == "bad_request" and
                      "over the limit" in r.get("error", ""), f"oversized: {r}")
                check(closed_by_peer(c), "connection left open after an oversized length")
            finally:
                c.close()
            # A NUL inside the frame: refused as not a JSON object.
            c = connect(sock)
            try:
                body = b'{"op":"sign"\x00}'
                c.sendall(struct.pack(">I", len(body)) + body)
                r = read_frame(c)
                check(r.get("code") == "bad_request" and "not a JSON object" in r.get("error", ""),
                      f"NUL in frame: {r}")
            finally:
                c.close()
            # A key set reference whose echo would be cut inside a UTF-8 sequence (fuzz_ctl's
            # find): refused as an invalid name, the echo printable ASCII, the connection
            # still answering.
            c = connect(sock)
            try:
                ref = "p" + "d" * 78 + "\u0516pan/x"   # bytes 79-80: one character
                c.sendall(frame(dict(sign_req(CLAIMS), keyset=ref)))
                r = read_frame(c)
                check(r.get("ok") is False and r.get("code") == "invalid_name" and
                      "?" in r.get("error", "") and r["error"].isascii(), f"cut UTF-8: {r}")
                c.sendall(frame(sign_req(CLAIMS)))
                check(read_frame(c).get("ok") is True, "not served after a cut UTF-8 echo")
            finally:
                c.close()
            # A frame cut short: the client goes away mid-frame; others are served meanwhile
            # and afterwards.
            cut = connect(sock)
            req = frame(sign_req(CLAIMS))
            cut.sendall(req[:len(req) // 2])
            check(call(sock, sign_req(CLAIMS)).get("ok") is True, "served during a cut frame")
            cut.close()
            time.sleep(0.2)
            check(call(sock, sign_req(CLAIMS)).get("ok") is True, "not served after it")
            check(d.proc.poll() is None, "keymgrd exited")

        def begun_frame_under_deadline():
            # A whole request followed, in the same write, by the start of the next one that
            # never completes: the first is answered; the begun one is held to the frame
            # deadline (KM_CTL_TIMEOUT_MS), not to the connection's idle time.
            c = connect(sock)
            try:
                req = frame(sign_req(CLAIMS))
                c.sendall(req + req[:3])
                check(read_frame(c).get("ok") is True, "the whole request was not answered")
                # Closed by keymgrd (the read timeout or the watchdog, whichever is first),
                # well before the idle time (KD_CTL_IDLE_MS, 60 s) would close it.
                c.settimeout(30)
                try:
                    closed = closed_by_peer(c)
                except socket.timeout:
                    closed = False
                check(closed, "the begun frame was left waiting like an idle connection")
            finally:
                c.close()
            check(call(sock, sign_req(CLAIMS)).get("ok") is True, "not served afterwards")

        return run_tests([("same token from object and string claims", same_token_both_forms),
                          ("same refusals from object and string claims",
                           same_refusals_both_forms),
                          ("success reply is {ok, jwt}", success_reply_shape),
                          ("pipelined and split requests", pipelined_and_split),
                          ("large request, then small ones", large_then_small),
                          ("bad frames", bad_frames),
                          ("a begun frame is held to the frame deadline",
                           begun_frame_under_deadline)])
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
