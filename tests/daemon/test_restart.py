# SPDX-License-Identifier: Apache-2.0
"""Restarts seen from a polling verifier.

A client polls every served path (the environment document and both key set documents) on
a fixed port, one new connection per request, while keymgrd is stopped and started again
three times. Between two daemons it may be refused at connect (or see a connection closed),
but every answer it gets is a 200 with the key set's keys: never a 404, because keymgrd
starts listening only once its stores' documents are published.

Usage: /usr/bin/python3 test_restart.py KEYMGR KEYMGRD
"""
import http.client
import json
import socket
import subprocess
import sys
import threading

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

PATHS = ("/dev/.well-known/jwks.json", "/dev/api/jwks.json", "/dev/web/jwks.json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Poller(threading.Thread):
    """GETs PATHS round robin until stopped; counts what came back."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.refused = 0
        self.bad = []           # (path, status, body) of every answer other than a good 200

    def one(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected):
            with self.lock:
                self.refused += 1
            return
        finally:
            c.close()
        good = r.status == 200
        if good:
            try:
                good = len(json.loads(body)["keys"]) >= 1
            except (ValueError, KeyError):
                good = False
        with self.lock:
            if good:
                self.ok += 1
            else:
                self.bad.append((path, r.status, body[:200]))

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.one(PATHS[i % len(PATHS)])
            i += 1

    def counts(self):
        with self.lock:
            return self.ok, self.refused, list(self.bad)


def test_restart_never_404(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd, keysets=("api", "web"))
    d = None
    poller = None
    port = str(free_port())
    try:
        s.keyset_create("dev/api")
        s.keyset_create("dev/web", "EdDSA")
        d = Daemon(s, "--port", port, verbose=False)
        check(d.port == int(port), f"keymgrd did not take --port {port}: {d.port}")
        d.wait_event("action", action="activate", keyset="api")
        d.wait_event("action", action="activate", keyset="web")
        for p in PATHS:
            # the keys activated above are published at the end of the daemon's pass
            wait_for(lambda: len(d.kids(p)) >= 1, f"{p} served with its key")
        poller = Poller(int(port))
        poller.start()
        for n in range(3):
            before = poller.counts()[0]
            wait_for(lambda: poller.counts()[0] >= before + 20, "the poller being answered")
            check(d.stop() == 0, "keymgrd did not exit 0")
            d = Daemon(s, "--port", port, verbose=False)
            after = poller.counts()[0]
            wait_for(lambda: poller.counts()[0] >= after + 20,
                     f"the restarted keymgrd ({n + 1}) answering the poller")
        poller.stop.set()
        poller.join(30)
        ok, refused, bad = poller.counts()
        print(f"  {ok} x 200, {refused} refused or closed while restarting, "
              f"{len(bad)} other answers")
        check(not bad, f"answers other than 200 with keys across restarts: {bad[:5]}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if poller is not None:
            poller.stop.set()
            poller.join(30)
        if d is not None:
            d.stop()
        s.close()


def test_bad_port_refused(keymgr, keymgrd):
    """A port that is taken stops keymgrd at start with the reason; nothing is served."""
    s = Setup(keymgr, keymgrd)
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            p = subprocess.run([keymgrd, "-c", s.config, "--port", str(port)], env=s.env,
                               capture_output=True, text=True, timeout=120)
        check(p.returncode == 1, f"keymgrd exited {p.returncode} on a taken port")
        out = p.stdout + p.stderr
        check("event=start" in out and "result=failed" in out and
              "Address already in use" in out, f"no clear start failure: {out[-500:]}")
    finally:
        s.close()


if __name__ == "__main__":
    k, kd = sys.argv[1], sys.argv[2]
    sys.exit(run_tests([
        ("restart.polling-verifier-never-404", lambda: test_restart_never_404(k, kd)),
        ("restart.taken-port-refused", lambda: test_bad_port_refused(k, kd)),
    ]))
