# SPDX-License-Identifier: Apache-2.0
"""`scripts/quickstart --ha` (docs/ha.md): in a temporary state directory, with the build
under test (--no-build --build-dir), in the background: PostgreSQL and three keymgrd nodes
start, each answers `keymgr status` on its control socket, exactly one believes it leads;
SIGKILL of that node and another takes over at the next epoch; the three nodes served the
same JWKS bytes; `--stop` stops the nodes and PostgreSQL. A bad option is refused (exit 2,
message) before anything starts.

Usage: test_quickstart_ha.py QUICKSTART KEYMGR
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from daemon_fixture import check, run_tests, wait_for  # noqa: E402

QUICKSTART, KEYMGR = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
BUILD = os.path.dirname(os.path.dirname(KEYMGR))


def free_base(n):
    """A base port with n free consecutive ports after it (checked by binding them)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n > 65535:
            continue
        try:
            held = []
            for p in range(base, base + n):
                t = socket.socket()
                t.bind(("127.0.0.1", p))
                held.append(t)
            return base
        except OSError:
            continue
        finally:
            for t in held:
                t.close()
    raise RuntimeError("no free consecutive ports")


class QS:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="qs-ha-", dir=os.environ.get("TMPDIR") or None)
        os.chmod(self.dir, 0o755)
        self.port, self.admin = free_base(3), free_base(3)
        self.env = dict(os.environ, SOFTHSM2_CONF=os.path.join(self.dir, "softhsm2.conf"))
        self.env.pop("KEYMGR_CONFIG", None)

    def run(self, *args):
        return subprocess.run([QUICKSTART, "--ha", "--dir", self.dir, "--no-build",
                               "--build-dir", BUILD, *args], env=self.env,
                              capture_output=True, text=True, timeout=300)

    def start(self):
        p = self.run("--background", "--port", str(self.port), "--admin-port",
                     str(self.admin), "--lease", "4")
        check(p.returncode == 0, f"quickstart --ha failed: {p.stdout}{p.stderr}")
        return p.stdout

    def pid(self, i):
        with open(os.path.join(self.dir, f"node{i}.pid")) as f:
            return int(f.read())

    def lease(self, i):
        p = subprocess.run([KEYMGR, "-c", os.path.join(self.dir, "keymgr.yaml"), "status",
                            "--json", "--socket", os.path.join(self.dir, f"node{i}.sock")],
                           env=self.env, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)["environments"][0]["lease"]

    def stop(self):
        p = self.run("--stop")
        shutil.rmtree(self.dir, ignore_errors=True)
        return p


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_three_nodes_one_leader_failover_stop():
    qs = QS()
    try:
        out = qs.start()
        check("kill -9" in out and "status" in out, "the takeover instructions are printed")
        leases = [qs.lease(i) for i in range(3)]
        check(all(le is not None for le in leases), f"every node answers status: {leases}")
        leaders = wait_for(lambda: [i for i in range(3) if (qs.lease(i) or {}).get("leader")],
                           "a leader", 60)
        check(len(leaders) == 1, f"one node leads, not {leaders}")
        old = leaders[0]
        epoch = qs.lease(old)["epoch"]
        bodies = {urllib.request.urlopen(
            f"http://127.0.0.1:{qs.port + i}/ha/.well-known/jwks.json", timeout=10).read()
            for i in range(3)}
        check(len(bodies) == 1 and b'"kid"' in bodies.pop(), "every node serves one JWKS")
        os.kill(qs.pid(old), signal.SIGKILL)
        others = [i for i in range(3) if i != old]
        new = wait_for(lambda: [i for i in others if (qs.lease(i) or {}).get("leader")],
                       "another node leads", 60)
        check(len(new) == 1, f"one new leader, not {new}")
        check(qs.lease(new[0])["epoch"] == epoch + 1, "the new leader's epoch is the next")
        pids = [qs.pid(i) for i in others]
        pg_pid_file = os.path.join(qs.dir, "pg", "data", "postmaster.pid")
        with open(pg_pid_file) as f:
            pg_pid = int(f.readline())
    finally:
        p = qs.stop()
    check(p.returncode == 0, f"--stop failed: {p.stderr}")
    wait_for(lambda: not any(alive(x) for x in pids + [pg_pid]) or None,
             "the nodes and PostgreSQL stopped", 60)


def test_bad_option_refused():
    qs = QS()
    try:
        p = qs.run("--background", "--port", "eighty")
        check(p.returncode == 2 and "must be numbers" in p.stderr, f"refused: {p.stderr}")
        check(os.listdir(qs.dir) == [], f"nothing started or written: {os.listdir(qs.dir)}")
    finally:
        shutil.rmtree(qs.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_tests([
        ("three nodes, one leader, failover, --stop", test_three_nodes_one_leader_failover_stop),
        ("a bad option is refused", test_bad_option_refused),
    ]))
