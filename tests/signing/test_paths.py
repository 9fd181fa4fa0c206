# SPDX-License-Identifier: Apache-2.0
"""`keymgr sign` through keymgrd and through the token: same output, same errors.

  - with keymgrd running, `keymgr sign` (auto) goes through the daemon (its log shows the
    request), `--via daemon` too; with it stopped, auto signs with the token. Every token
    verifies with PyJWT against the served JWKS, with the same header (alg, kid, typ) and
    the same claim names;
  - for each bad input (wrong aud, events in an access token, ttl over max_token_ttl, iat
    given, malformed JSON, a duplicate member, a JSON array, a configured key set that does
    not exist), the daemon path and the token path print the same message on stderr and exit
    with the same status; so do usage errors (invalid name, bad --ttl, bad --via);
  - `--via daemon` with no daemon fails clearly (exit 1); `--via token` works while it runs;
  - an environment whose key sets list no signers is signed by the token even with keymgrd
    running (auto), as before this service existed;
  - `keymgr sign --json` says who signed: "via":"daemon" through keymgrd, "token" with
    --via token or with no daemon, with the JWT's kid, alg, typ and expiry.

Usage: /usr/bin/python3 test_paths.py KEYMGR KEYMGRD
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signing_fixture import (CLAIMS, Daemon, SignSetup, check, jwks_keys, run_tests,  # noqa
                             verify)

BAD = [
    ("wrong aud", ["dev/api", "--claims", json.dumps(dict(CLAIMS, aud="nope")), "--ttl", "2s"]),
    ("events in an access token",
     ["dev/api", "--claims", json.dumps(dict(CLAIMS, events={"x": {}})), "--ttl", "2s"]),
    ("ttl over max_token_ttl", ["dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "1h"]),
    ("iat given", ["dev/api", "--claims", json.dumps(dict(CLAIMS, iat=1)), "--ttl", "2s"]),
    ("malformed JSON", ["dev/api", "--claims", '{"sub": ', "--ttl", "2s"]),
    ("duplicate member", ["dev/api", "--claims", '{"sub":"a","sub":"b"}', "--ttl", "2s"]),
    ("not an object", ["dev/api", "--claims", "[1]", "--ttl", "2s"]),
    ("no exp", ["dev/api", "--claims", json.dumps(CLAIMS)]),
    ("configured key set not created", ["dev/ghost", "--claims", json.dumps(CLAIMS),
                                        "--ttl", "2s"]),
    ("invalid name", ["Dev/x", "--claims", json.dumps(CLAIMS)]),
    ("bad ttl", ["dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "-3s"]),
]


def run(keymgr, keymgrd):
    # stage lists no signers: the daemon does not sign for it.
    # rotation_period 10m: the tokens compared below (kid included) are made seconds apart,
    # and a rotation between them on a slow machine (the test policy's 8 s) made them differ.
    s = SignSetup(keymgr, keymgrd, envs=("dev", "stage"), keysets=("api", "ghost"),
                  signers={"dev/api": "{ users: [ root ] }", "dev/ghost": "{ users: [ root ] }"},
                  policy={"rotation_period": "10m"})
    d = None
    try:
        s.keyset_create("dev/api")
        s.keyset_create("stage/api")
        cfg = open(s.config).read()
        stage = cfg[cfg.index("  stage:"):]
        check("signers" not in stage.split("daemon:")[0],
              "stage must list no signers for this test")
        daemon_out = {}

        def sign(*args, expect=0):
            return s.run("sign", *args, expect=expect)

        def through_daemon():
            nonlocal d
            d = Daemon(s)
            d.wait_event("signing-key", keyset="api", result="ok")
            n0 = len(d.events("sign", result="ok"))
            for via in ((), ("--via", "daemon")):
                tok = sign("dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s",
                           *via).stdout
                check(tok.endswith("\n") and tok.count("\n") == 1, "one line of output")
                daemon_out.setdefault("tokens", []).append(tok.strip())
            check(len(d.events("sign", result="ok")) == n0 + 2,
                  "keymgr sign did not go through keymgrd")
            keys = jwks_keys(d)
            for t in daemon_out["tokens"]:
                verify(t, keys)
            for name, args in BAD:
                p = sign(*args, expect=None)
                daemon_out[name] = (p.returncode, p.stderr, p.stdout)
            # --via token while the daemon runs: the token path, still valid.
            tok = sign("dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s", "--via",
                       "token").stdout.strip()
            verify(tok, keys)
            # stage: no signers, so auto falls back to the token; --via daemon says why not.
            n1 = len(d.events("sign"))
            tok = sign("stage/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s").stdout
            verify(tok.strip(), jwks_keys(d, "stage"))
            check(len(d.events("sign")) == n1, "stage was signed by keymgrd")
            p = sign("stage/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s", "--via",
                     "daemon", expect=1)
            check("does not sign for environment 'stage'" in p.stderr, p.stderr)
            check(d.stop() == 0, "keymgrd did not exit 0")

        def through_token():
            tok = sign("dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s").stdout
            check(tok.count("\n") == 1, "one line of output")
            # JWKS from the store (the daemon is gone): keymgr jwks.
            doc = json.loads(s.run("jwks", "dev").stdout)
            keys = {k["kid"]: k for k in doc["keys"]}
            h1, c1 = verify(tok.strip(), keys)
            h0, c0 = verify(daemon_out["tokens"][0], keys, check_time=False)
            check(h0 == h1, f"headers differ: {h0} vs {h1}")
            check(list(c0) == list(c1), f"claim names/order differ: {list(c0)} vs {list(c1)}")
            for name, args in BAD:
                p = sign(*args, expect=None)
                rc, err, out = daemon_out[name]
                check(p.returncode == rc and p.returncode != 0,
                      f"{name}: exit {p.returncode} (token) vs {rc} (daemon)")
                check(p.stderr == err and err.strip(),
                      f"{name}: stderr differs:\n token:  {p.stderr!r}\n daemon: {err!r}")
                check(p.stdout == out == "", f"{name}: output on refusal")
            p = sign("dev/api", "--claims", json.dumps(CLAIMS), "--via", "daemon", expect=1)
            check("no keymgrd listening" in p.stderr, f"--via daemon, no daemon: {p.stderr}")
            out = json.loads(sign("dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s",
                                  "--json").stdout)
            check(out["via"] == "token", f"sign --json with no daemon: {out}")
            verify(out["jwt"], keys)
            p = sign("dev/api", "--claims", "{}", "--via", "sideways", expect=2)
            check("--via" in p.stderr, p.stderr)

        def json_says_who_signed():
            # A daemon of its own, started after the token-path test.
            nonlocal d
            d = Daemon(s)
            d.wait_event("signing-key", keyset="api", result="ok")
            n2 = len(d.events("sign", result="ok"))
            for via, want in (((), "daemon"), (("--via", "daemon"), "daemon"),
                              (("--via", "token"), "token")):
                out = json.loads(sign("dev/api", "--claims", json.dumps(CLAIMS), "--ttl", "2s",
                                      "--json", *via).stdout)
                header, _ = verify(out["jwt"], jwks_keys(d))
                check(out["via"] == want and out["env"] == "dev" and out["keyset"] == "api"
                      and out["kid"] == header["kid"] and out["alg"] == header["alg"]
                      and out["typ"] == header["typ"] and out["expires_at"].endswith("Z"),
                      f"sign --json {via}: {out}")
            check(len(d.events("sign", result="ok")) == n2 + 2,
                  "sign --json: the daemon did not sign exactly the two daemon requests")
            check(d.stop() == 0, "keymgrd did not exit 0")

        return run_tests([("keymgr sign through keymgrd", through_daemon),
                          ("same output and errors through the token", through_token),
                          ("sign --json says who signed", json_says_who_signed)])
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
