# SPDX-License-Identifier: Apache-2.0
"""An HTTP connection flood does not break signing (issue 16, high), and a token that loses
its key or fails is re-initialised and reported unhealthy meanwhile.

flood:     keymgrd runs under a descriptor limit of 1024 (soft and hard, as systemd's default
           soft limit), daemon.connection_limit 900. 1,000 slow connections from 127.0.0.2-6
           (each sends a header byte, under the per-address limit of 256 each) hold its public
           port. Meanwhile every
           signing request through the control socket is signed, or refused as busy (never a
           denial or another error), and the admin port still answers /healthz; afterwards
           every request is signed. keymgrd's own descriptors are not what the flood uses (the
           listener process takes the connections), and the listener does not spin.
lost key:  the token answers C_SignInit with CKR_KEY_HANDLE_INVALID and its searches find
           nothing (the fault module), as SoftHSM did once it had lost its objects: the
           request gets token_error, keymgrd logs
           that it re-initialises the module, /healthz (admin) says unhealthy and
           `keymgr status` names the key set while the key cannot be found; once the token
           finds it again, keymgrd is healthy and signs.
general:   one CKR_GENERAL_ERROR from C_Sign: keymgrd re-initialises the module and signs
           again.
too many:  daemon.connection_limit 2000 under the limit of 1024: keymgrd raises the hard limit
           for its listener when it may (CAP_SYS_RESOURCE: the listener's limit is 2064), and
           otherwise refuses to start, naming daemon.connection_limit and the limit.

Usage: test_flood.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import json
import os
import resource
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "signing"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, run_tests,  # noqa: E402
                             wait_for)
import wrapper  # noqa: E402

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
ROOT = "{ users: [ root ] }"
FLOOD = 1000


class FaultSetup(SignSetup):
    """dev/api signed for by root, the token behind the fault module (rules in a file), and
    keymgrd started under a descriptor limit of 1024."""

    def __init__(self, connection_limit=900):
        self.rules = None
        # 900 connections and the listener's reserve of 64 fit the limit of 1024
        super().__init__(KEYMGR, KEYMGRD, signers={"api": ROOT},
                         policy={"rotation_period": "10m"},
                         extra_daemon=f"connection_limit: {connection_limit}")
        self.rules = os.path.join(self.dir, "p11fault.rules")
        open(self.rules, "w").close()
        self.env.update(KEYMGR_P11FAULT_MODULE=self.module, KEYMGR_P11FAULT_FILE=self.rules,
                        KEYMGR_P11FAULT_LOG=os.path.join(self.dir, "faults.log"))
        self.module = FAULT_MODULE
        self.write_config()
        limited = os.path.join(self.dir, "keymgrd-1024")
        with open(limited, "w") as f:
            f.write(f'#!/bin/sh\nexec prlimit --nofile=1024:1024 {KEYMGRD} "$@"\n')
        os.chmod(limited, 0o700)
        self.keymgrd_bin = limited

    def rule(self, text):
        with open(self.rules, "w") as f:
            f.write(text)


def sign(s):
    return call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS, "ttl": "2s"})


def started():
    s = FaultSetup()
    s.keyset_create("dev/api")
    s.run("rotate", "dev/api")
    d = Daemon(s, verbose=False)
    d.wait_event("signing-key", keyset="api", result="ok")
    wait_for(lambda: sign(s).get("ok"), "keymgrd signing", timeout=wrapper.timeout(60))
    return s, d


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def test_flood():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    s, d = started()
    socks = []
    try:
        with open(f"/proc/{d.proc.pid}/limits") as f:
            line = [x for x in f if x.startswith("Max open files")][0]
        check(line.split()[3:5] == ["1024", "1024"], f"keymgrd's limit: {line.strip()}")
        before = open_fds(d.proc.pid)
        for i in range(FLOOD):
            c = socket.socket()
            c.bind((f"127.0.0.{2 + i % 5}", 0))
            c.settimeout(5)
            try:
                c.connect(("127.0.0.1", d.port))
                c.send(b"G")
            except OSError:
                c.close()
                continue
            socks.append(c)
        check(len(socks) >= FLOOD * 9 // 10, f"only {len(socks)} connections made")
        lpid = d.listener_pid
        # The listener holds its 900 connections and its own few descriptors, not its whole
        # limit (900 + a reserve of 64): counted at hand-over, a burst cannot overshoot, and
        # the admin socket can still accept (it timed out when the flood took every one).
        check(open_fds(lpid) <= 900 + 32,
              f"the listener holds {open_fds(lpid)} descriptors for a limit of 900 connections")
        t0 = cpu_ticks(lpid)
        results = {}
        for _ in range(40):
            r = sign(s)
            key = "ok" if r.get("ok") else r.get("code")
            results[key] = results.get(key, 0) + 1
            for c in socks[:50]:      # keep the slow clients alive
                try:
                    c.send(b"E")
                except OSError:
                    pass
        check(set(results) <= {"ok", "busy"} and results.get("ok", 0) > 0,
              f"signing under the flood: {results}")
        st, _, body = d.admin("GET", "/healthz")
        check(st == 200, f"admin /healthz under the flood: {st} {body!r}")
        check(open_fds(d.proc.pid) <= before + 8,
              f"keymgrd holds the flood's descriptors: {before} -> {open_fds(d.proc.pid)}")
        time.sleep(1)   # a listener spinning on accept would burn this second
        check(cpu_ticks(lpid) - t0 < 100, "the listener spins under the flood")
    finally:
        for c in socks:
            c.close()
    try:
        def served():
            try:   # the listener closes the flood's connections as it notices them
                return d.http("GET", "/dev/.well-known/jwks.json")[0] == 200
            except OSError:
                return False
        wait_for(served, "the JWKS after the flood", timeout=wrapper.timeout(60))
        for _ in range(20):
            r = sign(s)
            check(r.get("ok"), f"signing after the flood: {r}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def health_reason(s):
    return json.loads(s.run("status", "--json").stdout).get("health_reason") or ""


def test_lost_key():
    s, d = started()
    try:
        # the token no longer has the key: its handle is invalid, a search finds nothing
        s.rule("C_SignInit:CKR_KEY_HANDLE_INVALID\nC_FindObjects:NONE\n")
        r = sign(s)
        check(not r.get("ok") and r.get("code") == "token_error", f"lost key: {r}")
        d.wait_event("signing-token", result="reinitialising the module")
        wait_for(lambda: d.admin("GET", "/healthz")[0] == 503, "unhealthy while the key is lost",
                 timeout=wrapper.timeout(60))
        check("dev/api" in health_reason(s), f"status reason: {health_reason(s)!r}")
        s.rule("")
        s.run("tick")
        wait_for(lambda: sign(s).get("ok"), "signing once the key is found",
                 timeout=wrapper.timeout(60))
        wait_for(lambda: d.admin("GET", "/healthz")[0] == 200, "healthy again",
                 timeout=wrapper.timeout(60))
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def test_general_error():
    s, d = started()
    try:
        # Every C_Sign fails until the rule is lifted: with count=1, a signature keymgrd made
        # for itself in between (an audit checkpoint) could take the one failure.
        s.rule("C_Sign:CKR_GENERAL_ERROR\n")
        r = sign(s)
        check(not r.get("ok") and r.get("code") == "token_error", f"general error: {r}")
        d.wait_event("signing-token", result="reinitialising the module")
        s.rule("")
        wait_for(lambda: sign(s).get("ok"), "signing after the re-initialisation",
                 timeout=wrapper.timeout(60))
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def test_connection_limit_must_fit():
    s = FaultSetup(connection_limit=2000)
    d = None
    try:
        p = __import__("subprocess").run([s.keymgrd_bin, "-c", s.config, "--port", "0"],
                                         env=s.env, capture_output=True, text=True,
                                         timeout=wrapper.timeout(60)) \
            if not can_raise() else None
        if p is not None:
            check(p.returncode == 1 and "daemon.connection_limit 2000" in p.stderr and
                  "1024" in p.stderr, f"a limit that does not fit: {p.returncode} {p.stderr}")
            return
        d = Daemon(s, verbose=False)
        with open(f"/proc/{d.listener_pid}/limits") as f:
            line = [x for x in f if x.startswith("Max open files")][0]
        check(line.split()[3:5] == ["2064", "2064"], f"the listener's limit: {line.strip()}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()


def can_raise():
    """Whether this process may raise a hard limit (CAP_SYS_RESOURCE), as keymgrd would."""
    import subprocess
    p = subprocess.run(["sh", "-c", "prlimit --nofile=1024:1024 sh -c "
                        "'prlimit --pid $$ --nofile=2064:2064'"], capture_output=True)
    return p.returncode == 0


if __name__ == "__main__":
    sys.exit(run_tests([("flood", test_flood), ("lost_key", test_lost_key),
                        ("general_error", test_general_error),
                        ("connection_limit_must_fit", test_connection_limit_must_fit)]))
