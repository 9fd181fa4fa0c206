# SPDX-License-Identifier: Apache-2.0
"""The class boundary and authorization through keymgrd's signing socket.

Each refusal comes back as {"ok":false,"error":...,"code":...} with a reason naming the rule,
and changes nothing (same keys, same JWKS):
  - an access-token key set asked to sign a token with `events` (a security-event claim);
  - the same key set asked to sign `"typ": "logout+jwt"` (or `token_use`) in the payload, a
    token that relying parties reading the class from the payload would take for another;
  - a wrong `aud`;
  - `exp` beyond max_token_ttl (ttl 1h against 2s), and an explicit exp too far away;
  - a caller not on the key set's signers list: the client runs as nobody (os.setuid in a
    forked child; the socket is group nogroup, mode 0660, for this test) and is denied; the
    denial is logged (key=value) and recorded as a sign.denied audit event whose actor is
    that uid. The same caller IS allowed on a key set listing its group (nogroup);
  - root gets no implicit right: a key set listing only nobody refuses root;
  - malformed requests (missing claims, bad ttl, invalid name, unknown environment).
An allowed request's token verifies with PyJWT against the JWKS keymgrd serves.

Usage: /usr/bin/python3 test_boundary.py KEYMGR KEYMGRD
"""
import grp
import json
import os
import pwd
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, jwks_keys,  # noqa: E402
                             run_tests, verify, wait_for)

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid


def as_nobody(sock, req):
    """Sends req from a child running as nobody:nogroup with no supplementary groups."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOGROUP)
            os.setuid(NOBODY)
            out = json.dumps(call(sock, req))
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out = json.dumps({"child_error": repr(e)})
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    reply = json.loads(data)
    check("child_error" not in reply, f"client as nobody failed: {reply}")
    return reply


def sign_req(ref="dev/api", claims=None, ttl="2s"):
    req = {"op": "sign", "keyset": ref, "claims": CLAIMS if claims is None else claims}
    if ttl is not None:
        req["ttl"] = ttl
    return req


def refused(reply, code, *words):
    check(reply.get("ok") is False, f"expected a refusal, got {reply}")
    check(reply.get("code") == code, f"code {reply.get('code')} != {code}: {reply}")
    for w in words:
        check(w in reply.get("error", ""), f"'{w}' not in the reason: {reply.get('error')}")


def run(keymgr, keymgrd):
    s = SignSetup(keymgr, keymgrd, keysets=("api", "grp", "others", "sec"),
                  signers={"api": "{ users: [ root ] }", "grp": "{ groups: [ nogroup ] }",
                           "others": "{ users: [ nobody ] }", "sec": "{ users: [ root ] }"},
                  extra_daemon="control_group: nogroup",
                  # No scheduled rotation during the test: "refusals change nothing" compares
                  # the keys at the end with those at the start (8 s rotations made it fail
                  # when the test ran slowly, under ASan on a loaded machine).
                  policy={"rotation_period": "10m"})
    d = None
    try:
        os.chmod(s.dir, 0o711)   # nobody reaches the socket in it (and nothing else)
        for ks in ("api", "grp", "others"):
            s.keyset_create(f"dev/{ks}")
        s.run("keyset", "create", "dev/sec", "--no-key", "--alg", "ES256", "--owner",
              "platform-security", "--purpose", "security-event-token")
        d = Daemon(s)
        for ks in ("api", "grp", "others", "sec"):
            d.wait_event("signing-key", keyset=ks, result="ok")
        before_keys = {ks: s.keys(f"dev/{ks}") for ks in ("api", "grp", "others")}
        before_jwks = jwks_keys(d)

        def good():
            reply = call(s.socket, sign_req())
            check(reply.get("ok") is True, f"allowed request refused: {reply}")
            verify(reply["jwt"], jwks_keys(d))
            # The claims may also travel as JSON text (what `keymgr sign` sends).
            reply = call(s.socket, sign_req(claims=json.dumps(CLAIMS), ttl=2))
            check(reply.get("ok") is True, f"claims as text refused: {reply}")
            verify(reply["jwt"], jwks_keys(d))
            # Several requests on one connection, answered in order.
            replies = call(s.socket, sign_req(), sign_req(), sign_req())
            check(all(r.get("ok") for r in replies), f"persistent connection: {replies}")
            check(len({r["jwt"] for r in replies}) == 3, "tokens repeat (jti)")

        def events_in_access_token():
            claims = dict(CLAIMS, events={"https://schemas.openid.net/event/backchannel-logout":
                                          {}})
            refused(call(s.socket, sign_req(claims=claims)), "policy_denied", "events")
            # The security-event key set signs the same events (its own class).
            reply = call(s.socket, sign_req(ref="dev/sec", claims={
                "aud": "api.test", "sub": "alice",
                "events": {"https://schemas.example/event/x": {}}}))
            check(reply.get("ok") is True, f"security-event key set refused events: {reply}")
            verify(reply["jwt"], jwks_keys(d), typ="secevent+jwt")

        def class_named_in_the_payload():
            for claim, value in (("typ", "logout+jwt"), ("token_use", "id")):
                claims = dict(CLAIMS, **{claim: value})
                refused(call(s.socket, sign_req(claims=claims)), "policy_denied", claim,
                        "names a token class", "typ at+jwt")

        def wrong_aud():
            refused(call(s.socket, sign_req(claims=dict(CLAIMS, aud="other.test"))),
                    "policy_denied", "aud", "other.test")

        def exp_beyond_ttl():
            refused(call(s.socket, sign_req(ttl="1h")), "policy_denied", "max_token_ttl")
            claims = dict(CLAIMS, exp=int(time.time()) + 3600)
            refused(call(s.socket, sign_req(claims=claims, ttl=None)), "policy_denied",
                    "max_token_ttl")

        def caller_not_listed():
            reply = as_nobody(s.socket, sign_req())
            refused(reply, "denied", "may not sign with dev/api", "signers", str(NOBODY))
            ev = d.wait_event("sign-denied", keyset="api", peer_uid=str(NOBODY))
            check(ev.get("peer_user") == "nobody", f"log line: {ev}")
            # Recorded in the audit log, as the caller.
            def recorded():
                out = s.run("audit", "log", "dev", "--json").stdout
                return [e for e in json.loads(out) if e["action"] == "sign.denied" and
                        e["keyset"] == "api"]
            evs = wait_for(recorded, "the sign.denied audit event")
            check(evs[0]["actor"]["uid"] == NOBODY and evs[0]["actor"]["via"] == "signing",
                  f"sign.denied actor: {evs[0]['actor']}")
            # Its group is listed on grp: allowed there.
            reply = as_nobody(s.socket, sign_req(ref="dev/grp"))
            check(reply.get("ok") is True, f"nogroup member refused on dev/grp: {reply}")
            verify(reply["jwt"], jwks_keys(d))
            # Unknown key set: the same denial (no oracle for key set names).
            refused(as_nobody(s.socket, sign_req(ref="dev/nosuch")), "denied",
                    "may not sign with dev/nosuch")

        def root_not_implicit():
            refused(call(s.socket, sign_req(ref="dev/others")), "denied",
                    "root (uid 0) may not sign with dev/others")

        def bad_requests():
            refused(call(s.socket, {"op": "sign", "keyset": "dev/api"}), "bad_request",
                    "claims")
            refused(call(s.socket, {"op": "sign", "claims": CLAIMS}), "bad_request",
                    "keyset")
            refused(call(s.socket, sign_req(ttl="soon")), "bad_request", "ttl")
            refused(call(s.socket, sign_req(ttl=-5)), "bad_request", "ttl")
            refused(call(s.socket, sign_req(ref="Dev/API")), "invalid_name")
            refused(call(s.socket, sign_req(ref="prod/api")), "not_served", "prod")
            refused(call(s.socket, sign_req(claims=[1, 2])), "bad_request", "claims")
            refused(call(s.socket, sign_req(claims="{not json")), "malformed", "not valid JSON")
            # The daemon still answers after all of that.
            check(call(s.socket, sign_req()).get("ok") is True, "daemon stopped answering")

        def nothing_changed():
            for ks, keys in before_keys.items():
                check(s.keys(f"dev/{ks}") == keys, f"refusals changed the keys of {ks}")
            check(jwks_keys(d) == before_jwks, "refusals changed the JWKS")

        rc = run_tests([("allowed request verifies", good),
                        ("events in an access token", events_in_access_token),
                        ("a class named in the payload", class_named_in_the_payload),
                        ("wrong aud", wrong_aud),
                        ("exp beyond max_token_ttl", exp_beyond_ttl),
                        ("caller not on the allowed list", caller_not_listed),
                        ("root not listed is denied", root_not_implicit),
                        ("malformed requests", bad_requests),
                        ("refusals change nothing", nothing_changed)])
        check(d.stop() == 0, "keymgrd did not exit 0")
        return rc
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
