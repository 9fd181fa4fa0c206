# SPDX-License-Identifier: Apache-2.0
"""The control socket (docs/control-protocol.md) and the keymgr status|reload|tick client.

  - the socket is mode 0660; a second keymgrd on the same socket refuses to start;
  - `keymgr status` (text and --json) and `keymgr tick` talk to the daemon;
  - a change made with the CLI (`keymgr rotate`) is served right after `keymgr tick`, and a
    `keymgr revoke` takes the key out of the served JWKS before it returns;
  - raw frames: unknown op, missing op, invalid JSON, a non-object, an oversized length,
    an unknown environment: each gets {"ok":false,"error":...} (or a closed connection for a
    truncated frame) and the daemon keeps answering;
  - with no daemon, the client verbs fail with a clear message (exit 1), and the other
    commands still work;
  - every time in the status reply is an RFC 3339 UTC string (null for never), as in all the
    JSON keymgr prints; `keymgr status` prints them;
  - keymgrd names an unknown or mistyped option (with the closest one), never its value,
    and starts nothing.

Usage: /usr/bin/python3 test_control.py KEYMGR KEYMGRD
"""
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests  # noqa: E402


def frame(sock_path, payload, length=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(struct.pack(">I", len(payload) if length is None else length) + payload)
    hdr = b""
    while len(hdr) < 4:
        b = s.recv(4 - len(hdr))
        if not b:
            s.close()
            return None
        hdr += b
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        b = s.recv(n - len(body))
        if not b:
            break
        body += b
    s.close()
    return json.loads(body)


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# The members of the status reply that hold a time (docs/control-protocol.md).
TIME_MEMBERS = {"now", "started", "last_tick", "last_tick_ok", "since", "at", "next_wake",
                "retry_at", "published_at", "served_at", "last_seen"}


def status_times(doc, path="$"):
    """(path, value) of every time member of a status reply."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in TIME_MEMBERS:
                out.append((f"{path}.{k}", v))
            else:
                out += status_times(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += status_times(v, f"{path}[{i}]")
    return out


def bad_options(s, keymgrd):
    """keymgrd refuses what it does not know, naming it; it starts nothing."""
    for args, message in ((["--prot", "0"], "unknown option '--prot'; did you mean '--port'?"),
                          (["--vebrose"], "unknown option '--vebrose'; did you mean '--verbose'?"),
                          (["--verbose=2"], "option '--verbose' takes no value"),
                          (["--ver"], "ambiguous option '--ver': --verbose, --version"),
                          (["--frobnicate=hunter2-secret"], "unknown option '--frobnicate'"),
                          (["-x"], "unknown option '-x'")):
        p = subprocess.run([keymgrd, "-c", s.config] + args, env=s.env, capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 2, f"keymgrd {args}: exit {p.returncode}: {p.stderr}")
        check(p.stderr.split("\n")[0] == "keymgrd: " + message,
              f"keymgrd {args}: {p.stderr!r}")
        check("Try 'keymgrd --help'." in p.stderr and "hunter2" not in p.stderr,
              f"keymgrd {args}: {p.stderr!r}")
        check(p.stdout == "" and not os.path.exists(s.socket), f"keymgrd {args} started")


def run(keymgr, keymgrd):
    # A period far beyond the test's length: under valgrind the test takes long enough for
    # FAST_POLICY's 8 s period to make a successor on its own, and `keymgr rotate` would then
    # only name that key instead of making the change this test watches for.
    s = Setup(keymgr, keymgrd, policy={"rotation_period": "10m"})
    d = None
    try:
        s.keyset_create("dev/api")
        bad_options(s, keymgrd)
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        check(stat.S_IMODE(os.stat(s.socket).st_mode) == 0o660, "socket mode is not 0660")

        p = subprocess.run([keymgrd, "-c", s.config, "--port", "0"], env=s.env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and "another keymgrd is listening" in p.stderr,
              f"second daemon: {p.returncode} {p.stderr}")

        st = json.loads(s.run("status", "--json").stdout)   # socket from the config
        ks = st["environments"][0]["keysets"][0]
        check(st["ok"] and ks["name"] == "api" and ks["active"]["kid"], f"status: {st}")
        check(ks["next_event"]["action"] in ("generate", "publish", "activate", "retire"),
              f"next event: {ks['next_event']}")
        text = s.run("status").stdout
        check("dev/api" in text and "active" in text and "next" in text, f"status: {text}")
        times = status_times(st)
        check(len(times) >= 6, f"status times: {times}")
        for path, v in times:
            check(v is None or (isinstance(v, str) and ISO.match(v)), f"status {path}: {v!r}")
        check(ISO.match(st["now"]) and ISO.match(st["last_tick_ok"]) and
              ISO.match(ks["active"]["since"]) and ISO.match(ks["next_event"]["at"]),
              f"status times: {times}")
        check(f"since {ks['active']['since']}" in text and st["last_tick_ok"] in text,
              f"status text does not show the reply's times: {text}")

        # A CLI change is served right after `keymgr tick`.
        new = json.loads(s.run("rotate", "dev/api", "--json").stdout)["kid"]
        out = s.run("tick").stdout
        check("planned" in out, f"tick: {out}")
        check(new in d.kids("/dev/.well-known/jwks.json"), "rotated key not served after tick")
        check(d.events("store-change", keyset="api"),
              f"the CLI change was not noticed: {d.text()[-6000:]}")

        # The CLI tells the daemon itself: when `keymgr revoke` returns, the revoked key is
        # already out of the served JWKS (no tick, no poll interval in between).
        check(new in d.kids("/dev/.well-known/jwks.json"), "successor not served")
        s.run("revoke", "--env", "dev", "--reason", "test: compromised", "--", new)
        check(new not in d.kids("/dev/.well-known/jwks.json"),
              "revoked key still served right after keymgr revoke returned")

        for payload, what in ((b'{"op":"bogus"}', "unknown op"),
                              (b'{"nop":1}', 'missing "op"'),
                              (b'{"op":', "bad request"),
                              (b'[1,2]', "bad request"),
                              (b'{"op":"status","env":"nope"}', "not served"),
                              (b'{"op":"status","env":"../x"}', "valid name"),
                              # cut at 32 bytes inside a UTF-8 sequence: still a refusal (it
                              # was taken for a reload: fuzz_ctl)
                              ('{"op":"dddddddddddr\u0516ddddddddddddddddr\u0516pa"}'
                               .encode(), "unknown op")):
            r = frame(s.socket, payload)
            check(r is not None and r["ok"] is False and what in r["error"],
                  f"{payload!r}: {r}")
        r = frame(s.socket, b"{}", length=100000)
        check(r is not None and r["ok"] is False and "over the limit" in r["error"],
              f"oversized: {r}")
        check(frame(s.socket, b'{"op":"st', length=50) is None, "truncated frame answered")
        r = frame(s.socket, b'{"op":"status","env":"dev","keyset":"api"}')
        check(r["ok"] and len(r["environments"][0]["keysets"]) == 1, "filtered status")
        ev = d.events("control", op="status")
        check(ev and ev[-1].get("peer_uid") == str(os.getuid()), "peer credentials not logged")
        check(d.stop() == 0, "keymgrd did not exit 0")
        check(not os.path.exists(s.socket), "socket left behind")

        # No daemon: the client verbs say so; other commands work.
        for verb in ("status", "tick", "reload"):
            p = s.run(verb, expect=1)
            check("no keymgrd listening on" in p.stderr, f"{verb} without daemon: {p.stderr}")
        s.run("key", "list", "dev/api")
        p = s.run("status", "--socket", s.socket, "dev", "extra", expect=2)
        check("at most one" in p.stderr, f"usage: {p.stderr}")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([("control.socket-and-client", lambda: run(sys.argv[1], sys.argv[2]))]))
