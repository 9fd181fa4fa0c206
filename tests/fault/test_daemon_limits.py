# SPDX-License-Identifier: Apache-2.0
"""keymgrd's resource limits under hostile clients (issue 8). Everything stays on loopback,
every attack is bounded (a few dozen sockets, a few seconds) and stops by itself.

HTTP (daemon.per_ip_limit 16, rate_limit 20/s, rate_burst 20, timeout 4 s):
  - slowloris: 40 connections from 127.0.0.2 send a request's headers one byte per second;
    meanwhile every request of a client on 127.0.0.1 is answered 200 at once; the server
    keeps at most 16 of the slow connections (the others are closed right away), and once
    the attacker stops sending, it closes the rest after the idle timeout;
  - rate limit: a burst of 80 requests from 127.0.0.3 gets 429 (Retry-After: 1) beyond its
    bucket, while 127.0.0.1 keeps getting 200; a second later 127.0.0.3 is served again.
Rate limits are checked against the token bucket's bound for the time the burst really took
(burst + rate x seconds, at most), never against a count that assumes a fast machine: a slow
run (ASan, a loaded host) sends fewer requests per second, and more of them pass.
Control socket (daemon.control_per_peer 8, control_rate_limit 5/s, control_rate_burst 5):
  - slowloris: a process running as `nobody` opens 24 connections and sends a frame header
    one byte per second: 8 are admitted and cut off when their frame is late (2 s), the other
    16 are refused at once ({"code":"busy"}); meanwhile `keymgr status` (root) works every
    time;
  - rate limit: `nobody` sending 30 status requests back to back is refused ("busy") beyond
    its bucket; root is not affected.

Usage: test_daemon_limits.py KEYMGR KEYMGRD
"""
import json
import os
import pwd
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]
JWKS = "/dev/.well-known/jwks.json"
LIMITS = """per_ip_limit: 16
rate_limit: 20
rate_burst: 20
timeout: 4
control_per_peer: 8
control_rate_limit: 5
control_rate_burst: 5
control_group: nogroup
"""


def http_get(port, source="127.0.0.1", timeout=3.0, path=JWKS):
    """One GET on a fresh connection from source; (status, headers) or raises."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0))
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in head[1:] if ":" in l}
    return status, headers


def slowloris_http(port, n, seconds, source):
    """n connections from source, each sending a request one byte per second for `seconds`;
    returns (sockets closed by the server while we were sending, sockets)."""
    req = f"GET {JWKS} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {'a' * 64}\r\n\r\n".encode()
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2,
                                                  source_address=(source, 0)))
        except OSError:
            pass
    closed = set()
    for i in range(seconds):
        for k, s in enumerate(socks):
            if k in closed:
                continue
            try:
                s.send(req[i:i + 1])
                s.setblocking(False)
                try:
                    if s.recv(1024) == b"":
                        closed.add(k)
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
            except OSError:
                closed.add(k)
        time.sleep(1)
    return closed, socks


def server_closed(s):
    s.settimeout(0.2)
    try:
        return s.recv(1024) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


class LimitSetup(Setup):
    def __init__(self):
        super().__init__(KEYMGR, KEYMGRD, extra_daemon=LIMITS,
                         policy={"rotation_period": "1h"})
        # A socket `nobody` can reach: its own world-searchable directory.
        self.ctl_dir = tempfile.mkdtemp(prefix="kd-ctl-")
        os.chmod(self.ctl_dir, 0o755)
        self.socket = os.path.join(self.ctl_dir, "ctl.sock")
        self.write_config()

    def close(self):
        super().close()
        subprocess.run(["rm", "-rf", self.ctl_dir])


def test_http(s, d):
    ok = []
    stop = threading.Event()

    def good_client():
        while not stop.is_set():
            t0 = time.monotonic()
            st, _ = http_get(d.port)
            ok.append((st, time.monotonic() - t0))
            time.sleep(0.25)

    th = threading.Thread(target=good_client)
    th.start()
    try:
        closed, socks = slowloris_http(d.port, 40, 6, "127.0.0.2")
        # Ten good requests while the slow connections are held, however slow this run is.
        wait_for(lambda: len(ok) >= 10, "ten good requests during the slowloris", timeout=60)
    finally:
        stop.set()
        th.join()
    try:
        check(len(ok) >= 10, f"only {len(ok)} good requests ran")
        check(all(st == 200 for st, _ in ok), f"good client statuses {[st for st, _ in ok]}")
        check(max(t for _, t in ok) < 2.0, f"a good request waited {max(t for _, t in ok):.1f}s")
        check(len(closed) >= 40 - 16, f"only {len(closed)} slow connections were refused")
        # The attacker stops sending: the idle timeout (4 s) closes what is left.
        wait_for(lambda: all(k in closed or server_closed(x) for k, x in enumerate(socks)),
                 "the server closing idle slow connections", timeout=20)
    finally:
        for x in socks:
            x.close()
    # Rate limit: a burst from 127.0.0.3.
    statuses, retry = [], set()
    t0 = time.monotonic()
    for _ in range(80):
        st, h = http_get(d.port, source="127.0.0.3")
        statuses.append(st)
        if st == 429:
            retry.add(h.get("retry-after"))
    took = time.monotonic() - t0
    bound = bucket_bound(20, 20, took)
    check(statuses[:20] == [200] * 20 and set(statuses) <= {200, 429},
          f"burst statuses: {statuses}")
    check(statuses.count(200) <= bound and (429 in statuses or bound >= 80),
          f"{statuses.count(200)} of 80 served in {took:.2f}s, at most {bound} allowed: "
          f"{statuses}")
    check(retry == {"1"}, f"Retry-After {retry}")
    check(http_get(d.port)[0] == 200, "127.0.0.1 limited by 127.0.0.3's burst")
    time.sleep(1.2)
    check(http_get(d.port, source="127.0.0.3")[0] == 200, "127.0.0.3 not served again")
    st, _, body = d.admin("GET", "/metrics")
    check(st == 200 and b'code="429"' in body, "429s not counted in /metrics")


SLOW_CTL = r"""
import json, os, socket, struct, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
body = json.dumps({"op": "status"}).encode()
frame = struct.pack(">I", len(body)) + body
state = ["open"] * n


def look(s):
    # What the server did to s so far: a 'busy' reply, 'cut' (end of stream), or None.
    s.setblocking(False)
    try:
        data = s.recv(65536)
        return "busy" if b'"busy"' in data else ("cut" if data == b"" else "answered")
    except BlockingIOError:
        return None
    except OSError:
        return "cut"
    finally:
        s.setblocking(True)


time.sleep(0.3)
for i in range(6):
    for k, s in enumerate(socks):
        if state[k] != "open":
            continue
        seen = look(s)
        if seen is None:
            try:
                s.send(frame[i:i + 1])
            except OSError:
                seen = look(s) or "cut"
        if seen is not None:
            state[k] = seen
    time.sleep(1)
for k, s in enumerate(socks):
    if state[k] == "open":
        state[k] = look(s) or "open"
print(json.dumps(state))
"""

BURST_CTL = r"""
import json, socket, struct, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
body = json.dumps({"op": "status"}).encode()
out = []
t0 = time.monotonic()
for _ in range(30):
    s.sendall(struct.pack(">I", len(body)) + body)
    hdr = b""
    while len(hdr) < 4:
        hdr += s.recv(4 - len(hdr))
    n = struct.unpack(">I", hdr)[0]
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    r = json.loads(data)
    out.append("ok" if r.get("ok") else r.get("code", "?"))
print(json.dumps({"replies": out, "seconds": time.monotonic() - t0}))
"""


def bucket_bound(rate, burst, seconds):
    """The most requests a token bucket (rate/s, burst) lets through in `seconds`."""
    return burst + int(rate * seconds) + 1


def as_nobody():
    pw = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def test_control(s, d):
    slow = subprocess.Popen(["/usr/bin/python3", "-c", SLOW_CTL, s.socket, "24"],
                            preexec_fn=as_nobody, stdout=subprocess.PIPE, text=True)
    times = []
    try:
        time.sleep(0.5)
        while slow.poll() is None:
            t0 = time.monotonic()
            p = s.run("status", "--json", expect=None, timeout=30)
            times.append(time.monotonic() - t0)
            check(p.returncode == 0, f"keymgr status during the slowloris: {p.stderr}")
            check(times[-1] < 5, f"keymgr status took {times[-1]:.1f}s during the slowloris")
            # root is rate-limited too (control_rate_limit 5/s): stay well below it
            time.sleep(0.3)
    finally:
        out, _ = slow.communicate(timeout=60)
    state = json.loads(out)
    # The slow client runs for 6 s and the first call starts at 0.5 s: with every call
    # answered within 5 s, a second one always starts while it runs, however slow this run
    # is (a count of calls per 6 s would measure the machine's speed instead).
    check(len(times) >= 2, f"only {len(times)} status calls ran")
    check(state.count("busy") == 24 - 8, f"slow connections: {state}")
    check(state.count("cut") == 8, f"slow connections: {state}")
    check(d.events("control", result="cut off"), "no cut-off logged")
    # Rate limit for nobody, none for root.
    p = subprocess.run(["/usr/bin/python3", "-c", BURST_CTL, s.socket], preexec_fn=as_nobody,
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"burst client: {p.stderr}")
    burst = json.loads(p.stdout)
    got, bound = burst["replies"], bucket_bound(5, 5, burst["seconds"])
    check(got[:5] == ["ok"] * 5 and set(got) <= {"ok", "busy"}, f"nobody's burst: {got}")
    check(got.count("ok") <= bound and ("busy" in got or bound >= 30),
          f"nobody's burst: {got.count('ok')} of 30 served in {burst['seconds']:.2f}s, at most "
          f"{bound} allowed: {got}")
    check(s.run("status", "--json").returncode == 0, "root limited by nobody's burst")


def main():
    if os.geteuid() != 0:
        print("skip: needs root (a second uid for the control socket, 127.0.0.x sources)")
        return 77
    s = LimitSetup()
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        d = Daemon(s, "--control-socket", s.socket)
        try:
            wait_for(lambda: d.http("GET", "/healthz")[0] == 200, "healthy")
            rc = run_tests([("HTTP: slowloris and per-address rate limit", lambda: test_http(s, d)),
                            ("control socket: slowloris and per-peer rate limit",
                             lambda: test_control(s, d))])
            check(d.stop() == 0, "exit status")
            return rc
        finally:
            if d.proc.poll() is None:
                d.stop()
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
