# SPDX-License-Identifier: Apache-2.0
"""The ha suite's cluster: one PostgreSQL (tests/common/pg_fixture.py), one SoftHSM token
directory, and N keymgrd nodes on one configuration whose environment's store is a schema of
that PostgreSQL; each node has its own control socket and ephemeral ports. Leases of a few
seconds (long enough for ASan's slowdown), read from each node's own `keymgr status`.
"""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from daemon_fixture import Daemon, Setup, check  # noqa: E402
from pg_fixture import Postgres  # noqa: E402

# Seconds: renewed every third, stepped down a sixth before the expiry. Longer under the
# sanitizers (tests/ha/meson.build passes it to test_ha.py, which sets
# KEYMGR_TEST_HA_LEASE), whose slowdown a lease must outlast; a few seconds either way.
LEASE = int(os.environ.get("KEYMGR_TEST_HA_LEASE", "4"))
ENV_DOC = "/dev/.well-known/jwks.json"   # the environment's JWKS on every node


class Cluster:
    def __init__(self, keymgr, keymgrd, nodes=3, keysets=("api",), schema="dev",
                 setup=Setup, extra_daemon=""):
        self.pg = Postgres(os.environ.get("TMPDIR") or None)
        self.pg.start()
        self.pg.create_db("keymgr")
        self.s = setup(keymgr, keymgrd, keysets=keysets,
                       extra_daemon=f"lease: {LEASE}\n{extra_daemon}")
        self.s.stores["dev"] = self.pg.uri("keymgr", schema)
        self.s.write_config()
        self.n = nodes
        self.nodes = [None] * nodes
        self.stopped = set()   # nodes under SIGSTOP: they cannot answer

    def start(self, i):
        self.nodes[i] = Daemon(self.s, "--control-socket", self.socket(i))
        return self.nodes[i]

    def socket(self, i):
        return os.path.join(self.s.dir, f"ctl{i}.sock")

    def status(self, i):
        """Node i's own view (its `keymgr status`), or None when it does not answer."""
        p = subprocess.run([self.s.keymgr_bin, "-c", self.s.config, "status", "--json",
                            "--socket", self.socket(i)], env=self.s.env, capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)["environments"][0]

    def lease(self, i):
        st = self.status(i)
        return st["lease"] if st else None

    def leaders(self):
        """The nodes that believe they lead, asked one after the other."""
        out = []
        for i in self.alive():
            le = self.lease(i)
            if le and le["leader"]:
                out.append(i)
        return out

    def alive(self):
        return [i for i in range(self.n) if i not in self.stopped and
                self.nodes[i] is not None and self.nodes[i].proc.poll() is None]

    def db(self, sql):
        return self.pg.psql(sql, "keymgr").strip()

    def close(self):
        for i in self.stopped:
            self.nodes[i].proc.send_signal(signal.SIGCONT)
        for d in self.nodes:
            if d is not None and d.proc.poll() is None:
                try:
                    d.stop()
                except Exception:  # noqa: BLE001 - the cleanup goes on
                    d.proc.kill()
        self.s.close()
        self.pg.cleanup()


def served(c):
    """(etag, body) of the environment's JWKS on every live node."""
    out = []
    for i in c.alive():
        st, h, b = c.nodes[i].http("GET", ENV_DOC)
        check(st == 200, f"node {i}: GET {ENV_DOC}: {st}")
        out.append((h.get("etag"), b))
    return out


def identical(c):
    """The (etag, body) every live node serves, or None while they differ."""
    docs = served(c)
    return docs[0] if all(d == docs[0] for d in docs) else None


def store_doc(c):
    """The document the leader wrote into the store."""
    return bytes.fromhex(c.db(f"SELECT encode(body, 'hex') FROM dev.jwks_documents "
                              f"WHERE path = '{ENV_DOC}'"))


def identical_as_stored(c):
    """The (etag, body) every live node serves when it is the store's document, else None."""
    doc = identical(c)
    return doc if doc is not None and doc[1] == store_doc(c) else None
