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
    commands still work.

Usage: /usr/bin/python3 test_control.py KEYMGR KEYMGRD
"""
import json
import os
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


def run(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd)
    d = None
    try:
        s.keyset_create("dev/api")
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

        # A CLI change is served right after `keymgr tick`.
        new = json.loads(s.run("rotate", "dev/api", "--json").stdout)["kid"]
        out = s.run("tick").stdout
        check("planned" in out, f"tick: {out}")
        check(new in d.kids("/dev/.well-known/jwks.json"), "rotated key not served after tick")
        check(d.events("store-change", keyset="api"), "the CLI change was not noticed")

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
                              (b'{"op":"status","env":"../x"}', "valid name")):
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
