# SPDX-License-Identifier: Apache-2.0
"""keymgr store copy (issue 18): an environment's store from SQLite to PostgreSQL and back,
with the audit chain intact. Real keymgr, a real SoftHSM token, a real PostgreSQL started for
this test (tests/common/pg_fixture.py: initdb in a temporary directory, Unix socket only).

  - a store with key sets, keys in several states (active, published, revoked), owner
    history, an audit key and a signed checkpoint is copied to a PostgreSQL schema:
    `audit verify --store URI` passes, the environment pointed at the URI lists the same keys
    and the same audit log, and goes on working there (a rotation, then verify again);
  - copied back from PostgreSQL into a new SQLite file, it verifies again with the same head;
  - refused, with the destination unchanged: a non-empty destination (both backends), a
    source that holds no store; a missing --to is a usage error.

Usage: test_store_copy.py KEYMGR KEYMGRD
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from daemon_fixture import Setup, check, run_tests  # noqa: E402
from pg_fixture import Postgres  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]
PG = Postgres(os.environ.get("TMPDIR") or None)


def populate(s):
    s.run("keyset", "create", "dev/api", "--alg", "ES256", "--owner", "platform-security",
          "--purpose", "access-token")
    s.run("keyset", "create", "dev/web", "--alg", "ES256", "--owner", "platform-security",
          "--purpose", "id-token")
    s.run("rotate", "dev/api")
    s.run("keyset", "set-owner", "dev/web", "team-web", "--reason", "handover")
    web = [k for k in s.keys("dev/web") if k["state"] == "active"][0]
    s.run("revoke", web["kid"], "--env", "dev", "--reason", "test of the copy")
    s.run("audit", "checkpoint", "dev")


def view(s):
    """What the environment shows: its keys and its audit log."""
    keys = [(k["kid"], k["state"]) for ref in ("dev/api", "dev/web") for k in s.keys(ref)]
    log = json.loads(s.run("audit", "log", "dev", "--json").stdout)
    return keys, log


def verify(s, store):
    p = s.run("audit", "verify", "--store", store, "dev", "--json", expect=None)
    check(p.returncode == 0, f"audit verify --store {store}: {p.returncode} {p.stdout}"
          f" {p.stderr}")
    return json.loads(p.stdout)


def copy(s, src, dst, expect=0):
    return s.run("store", "copy", "--from", src, "--to", dst, "--json", expect=expect)


def test_copy_to_postgresql_and_back():
    s = Setup(KEYMGR, KEYMGRD, keysets=("api", "web"))
    try:
        populate(s)
        before = view(s)
        src = f"{s.dir}/dev.db"
        uri = PG.uri("keymgr", "dev_copy")
        out = json.loads(copy(s, src, uri).stdout)
        check(out["env"] == "dev" and out["keysets"] == 2 and out["keys"] >= 4,
              f"copy reported {out}")
        check(out["checkpoints"] == 1 and out["audit_keys"] == 1, f"copy reported {out}")
        verify(s, uri)
        # the environment on PostgreSQL shows exactly what it showed on SQLite
        s.stores["dev"] = uri
        s.write_config()
        after = view(s)
        check(after == before, f"the copy differs:\n{before}\n{after}")
        check(PG.psql("SELECT seq FROM dev_copy.audit_head", "keymgr").strip() ==
              str(out["head_seq"]), "the head row is not the chain's head")
        # and goes on working there
        s.run("rotate", "dev/api", "--now", "--force")
        verify(s, uri)
        # back into a new SQLite file: the same head, the same view
        pg_view = view(s)
        pg_head = PG.psql("SELECT seq FROM dev_copy.audit_head", "keymgr").strip()
        back = f"{s.dir}/back.db"
        out2 = json.loads(copy(s, uri, back).stdout)
        check(str(out2["head_seq"]) == pg_head, f"back copy head {out2['head_seq']} is not "
              f"{pg_head}")
        verify(s, back)
        s.stores["dev"] = back
        s.write_config()
        check(view(s) == pg_view, "the copy back differs")
    finally:
        s.close()


def test_copy_refusals():
    s = Setup(KEYMGR, KEYMGRD)
    try:
        s.run("keyset", "create", "dev/api", "--alg", "ES256", "--owner", "platform-security",
              "--purpose", "access-token")
        src = f"{s.dir}/dev.db"
        uri = PG.uri("keymgr", "dev_refuse")
        copy(s, src, uri)
        head = PG.psql("SELECT seq || hash FROM dev_refuse.audit_head", "keymgr")
        # a non-empty destination: PostgreSQL, then SQLite
        p = copy(s, src, uri, expect=1)
        check("not empty" in p.stderr, f"message: {p.stderr}")
        check(PG.psql("SELECT seq || hash FROM dev_refuse.audit_head", "keymgr") == head,
              "the refused copy changed the destination")
        with open(src, "rb") as f:
            before = f.read()
        p = copy(s, uri, src, expect=1)
        check("not empty" in p.stderr, f"message: {p.stderr}")
        with open(src, "rb") as f:
            check(f.read() == before, "the refused copy changed the SQLite destination")
        # a source that holds no store
        p = copy(s, f"{s.dir}/missing.db", f"{s.dir}/new.db", expect=1)
        check("no store" in p.stderr, f"message: {p.stderr}")
        check(not os.path.exists(f"{s.dir}/new.db"), "a refused copy created its destination")
        p = copy(s, PG.uri("keymgr", "nothing_here"), f"{s.dir}/new.db", expect=1)
        check("no store" in p.stderr, f"message: {p.stderr}")
        # usage
        p = s.run("store", "copy", "--from", src, expect=2)
        check("--to" in p.stderr, f"message: {p.stderr}")
    finally:
        s.close()


if __name__ == "__main__":
    PG.start()
    try:
        PG.create_db("keymgr")
        rc = run_tests([("copy to PostgreSQL and back", test_copy_to_postgresql_and_back),
                        ("copy refusals", test_copy_refusals)])
    finally:
        PG.cleanup()
    sys.exit(rc)
