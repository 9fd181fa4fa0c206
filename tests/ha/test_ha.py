# SPDX-License-Identifier: Apache-2.0
"""The ha suite (issue 18): three keymgrd nodes, one SoftHSM token directory, one PostgreSQL
started by the test (tests/ha/ha_fixture.py). Runs serially; leases of LEASE seconds.

  - one leader: while the leader rotates (FAST_POLICY: a rotation every few seconds), at no
    sampled moment do two nodes believe they lead (each node's own `status`); the lease's
    epoch only grows; the fenced writes counted by the nodes are reported;
  - SIGKILL of the leader: another node leads, at the next epoch; the failover time is
    reported (not asserted: tests do not assert wall-clock time); after it, one active key
    and `audit verify` passes;
  - SIGSTOP of the leader past its lease, then SIGCONT: it no longer believes it leads, the
    epoch moved on, the audit chain has no fork (`audit verify` passes);
  - identical JWKS: through several rotations, after each change every node serves the same
    bytes and ETag, exactly the document the leader wrote into the store, within the poll
    interval (waited for, not timed);
  - PostgreSQL restarted while the nodes serve: they go on serving the last documents
    meanwhile, reconnect, and a leader goes on rotating; nothing is lost (`audit verify`);
  - a simulated verifier that caches the JWKS of a random node for its max-age (never
    refetching early) verifies tokens signed by random nodes through several rotations:
    zero tokens whose kid it cannot find, zero failed verifications ("busy" answers, a node
    not serving the new key yet, are counted and reported);
  - the leader killed inside its key generation (the fault module's C_GenerateKeyPair:KILL:
    its intent is committed, the token never made the pair): a new leader at the next epoch
    reconciles first (the intent abandoned), then rotates; no pending intent, one active
    key, `keymgr reconcile --dry-run` finds nothing, `audit verify` passes;
  - a deposed leader's write: the leader held inside its key generation (the fault module's
    HOLD) and SIGSTOPped past its lease; awake, its confirmation is refused by the fence,
    counted on its /metrics, logged, it steps down, and nothing of it reaches the store.

Usage: test_ha.py KEYMGR KEYMGRD P11FAULT-MODULE [LEASE-SECONDS]
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if len(sys.argv) > 4:
    os.environ["KEYMGR_TEST_HA_LEASE"] = sys.argv[4]   # before ha_fixture reads it
from ha_fixture import (ENV_DOC, LEASE, Cluster, identical, identical_as_stored,  # noqa: E402
                        served, store_doc)
from daemon_fixture import Failure, Setup, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
# A sampling round that takes longer than the gap the lease leaves between two leaders'
# beliefs (the margin, LEASE/6) could see a handover as an overlap: such rounds are not
# counted, and reported.
MARGIN = LEASE / 6.0


def start_cluster(c):
    c.s.keyset_create("dev/api")
    for i in range(c.n):
        c.start(i)
    return wait_for(lambda: c.leaders(), "a leader", 60)


def sample_leaders(c, seconds):
    """Samples every node's belief for about `seconds`; returns (rounds, skipped, epochs)."""
    rounds = skipped = 0
    epochs = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=c.n) as pool:   # every node asked at once
            views = list(pool.map(c.lease, c.alive()))
        took = time.monotonic() - t0
        if took > MARGIN:
            skipped += 1
            continue
        rounds += 1
        leaders = [v["node"] for v in views if v and v["leader"]]
        check(len(leaders) <= 1, f"two nodes believe they lead at once: {leaders}")
        epochs += [v["epoch"] for v in views if v and v["leader"]]
        time.sleep(0.05)
    return rounds, skipped, epochs


def fenced_total(c):
    return sum((c.lease(i) or {}).get("fenced_writes", 0) for i in c.alive())


def audit_ok(c):
    p = c.s.run("audit", "verify", "dev", "--json", expect=None)
    check(p.returncode == 0, f"audit verify: {p.stdout} {p.stderr}")


def one_active(c):
    keys = c.s.keys("dev/api")
    active = [k for k in keys if k["state"] == "active"]
    check(len(active) == 1, f"active keys: {keys}")


def test_one_leader_through_rotations():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        start_cluster(c)
        serial0 = int(c.db("SELECT value FROM dev.counters WHERE name = 'jwks_serial'"))
        rounds, skipped, epochs = sample_leaders(c, 3 * LEASE)
        check(rounds > 10, f"only {rounds} sampling rounds")
        check(epochs == sorted(epochs), f"the epoch went back: {epochs}")
        serial1 = int(c.db("SELECT value FROM dev.counters WHERE name = 'jwks_serial'"))
        check(serial1 > serial0, "the leader made no change while sampled")
        print(f"     {rounds} rounds ({skipped} too slow to count), epochs "
              f"{sorted(set(epochs))}, fenced writes {fenced_total(c)}", flush=True)
        one_active(c)
        audit_ok(c)
    finally:
        c.close()


def test_sigkill_leader_fails_over():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        lead = start_cluster(c)[0]
        epoch = c.lease(lead)["epoch"]
        killed = time.monotonic()
        c.nodes[lead].proc.send_signal(signal.SIGKILL)
        c.nodes[lead].proc.wait()
        new = wait_for(lambda: c.leaders(), "a new leader", 60)
        took = time.monotonic() - killed
        check(new[0] != lead, "the killed node leads")
        check(c.lease(new[0])["epoch"] == epoch + 1, "the new leader's epoch is not +1")
        print(f"     failover in {took:.1f} s (lease {LEASE} s, renewed every "
              f"{LEASE / 3:.1f} s)", flush=True)
        # the new leader goes on rotating; the chain and the keys stay whole
        serial = int(c.db("SELECT value FROM dev.counters WHERE name = 'jwks_serial'"))
        wait_for(lambda: int(c.db("SELECT value FROM dev.counters WHERE name = "
                                  "'jwks_serial'")) > serial, "a change by the new leader",
                 60)
        one_active(c)
        audit_ok(c)
    finally:
        c.close()


def test_sigstop_leader_steps_down():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        lead = start_cluster(c)[0]
        epoch = c.lease(lead)["epoch"]
        c.nodes[lead].proc.send_signal(signal.SIGSTOP)
        c.stopped.add(lead)
        try:
            # past its lease: another node takes over at the next epoch
            new = wait_for(lambda: [i for i in c.leaders() if i != lead], "a new leader", 60)
            check(c.lease(new[0])["epoch"] == epoch + 1, "the new leader's epoch is not +1")
        finally:
            c.nodes[lead].proc.send_signal(signal.SIGCONT)
            c.stopped.discard(lead)
        # the old leader, awake, no longer believes it leads
        wait_for(lambda: (c.lease(lead) or {}).get("leader") is False, "the old leader steps "
                 "down", 60)
        v = c.lease(lead)
        check(v["lost"] >= 1, f"the old leader never stepped down: {v}")
        # and its lease thread, trying again, learns who leads now
        v = wait_for(lambda: (lambda x: x if x and x["epoch"] > epoch else None)(c.lease(lead)),
                     "the old leader sees the new epoch", 60)
        check(v["holder"] != v["node"] and not v["leader"], f"the old leader's view: {v}")
        print(f"     the old leader stepped down; fenced writes {v['fenced_writes']}",
              flush=True)
        rounds, _, _ = sample_leaders(c, LEASE)
        check(rounds > 0, "no sampling round")
        one_active(c)
        audit_ok(c)
    finally:
        c.close()


def test_identical_jwks_on_every_node():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        start_cluster(c)
        versions = []
        while len(versions) < 3:
            etag, body = wait_for(lambda: identical_as_stored(c),
                                  "every node serving the store's document", 60)
            if not versions or versions[-1][0] != etag:
                versions.append((etag, body))
            time.sleep(0.2)
        kidsets = [[k["kid"] for k in json.loads(b)["keys"]] for _, b in versions]
        check(len({e for e, _ in versions}) == len(versions), "an ETag for two documents")
        print(f"     {len(versions)} versions, each identical on every node: "
              f"{[len(k) for k in kidsets]} keys", flush=True)
    finally:
        c.close()


def test_postgresql_restart():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        start_cluster(c)
        etag, body = wait_for(lambda: identical(c), "the same JWKS on every node", 60)
        c.pg.stop()
        try:
            # the nodes serve the documents they have, the store being away
            for _ in range(5):
                for e2, b2 in served(c):
                    check(b2, "a node stopped serving while PostgreSQL was down")
                time.sleep(0.3)
        finally:
            c.pg.start()
        epoch0 = max(v["epoch"] for v in (c.lease(i) for i in c.alive()) if v)
        serial = int(c.db("SELECT value FROM dev.counters WHERE name = 'jwks_serial'"))
        wait_for(lambda: c.leaders(), "a leader after the restart", 60)
        wait_for(lambda: int(c.db("SELECT value FROM dev.counters WHERE name = "
                                  "'jwks_serial'")) > serial, "a change after the restart", 60)
        wait_for(lambda: identical(c), "the same JWKS on every node after the restart", 60)
        print(f"     epochs before/after: {epoch0}/"
              f"{max(v['epoch'] for v in (c.lease(i) for i in c.alive()) if v)}", flush=True)
        one_active(c)
        audit_ok(c)
    finally:
        c.close()


def test_verifier_through_rotations():
    import random
    import subprocess
    sys.path.insert(0, os.path.join(HERE, "..", "signing"))
    import jwt
    from signing_fixture import CLAIMS, SignSetup
    c = Cluster(KEYMGR, KEYMGRD, setup=SignSetup)
    try:
        start_cluster(c)
        rng = random.Random(18)
        cache, cached_until = None, 0.0
        signed = unknown = busy = 0
        kids = set()
        end = time.monotonic() + 6 * LEASE
        while time.monotonic() < end or len(kids) < 3:
            check(time.monotonic() < end + 120, f"no third key after 2 minutes: {kids}")
            if cache is None or time.monotonic() >= cached_until:
                i = rng.choice(c.alive())
                st, h, body = c.nodes[i].http("GET", ENV_DOC)
                check(st == 200, f"node {i}: GET {ENV_DOC}: {st}")
                age = int(h.get("cache-control", "max-age=1").split("max-age=")[1].split(",")[0])
                cache, cached_until = json.loads(body), time.monotonic() + age
            i = rng.choice(c.alive())
            p = subprocess.run([c.s.keymgr_bin, "-c", c.s.config, "sign", "dev/api", "--via",
                                "daemon", "--socket", c.socket(i), "--ttl", "2s", "--claims",
                                json.dumps(CLAIMS)], env=c.s.env, capture_output=True,
                               text=True, timeout=60)
            if p.returncode != 0:
                check("busy" in p.stderr or "not in the JWKS" in p.stderr,
                      f"node {i} refused to sign: {p.stderr}")
                busy += 1
                continue
            token = p.stdout.strip()
            kid = jwt.get_unverified_header(token)["kid"]
            kids.add(kid)
            signed += 1
            keys = {k["kid"]: k for k in cache["keys"]}
            if kid not in keys:
                unknown += 1
                continue
            key = jwt.PyJWK(keys[kid])
            jwt.decode(token, key.key, algorithms=[keys[kid]["alg"]], audience="api.test")
            time.sleep(0.1)
        print(f"     {signed} tokens from random nodes, {len(kids)} keys, {unknown} unknown "
              f"kids, {busy} busy answers", flush=True)
        check(unknown == 0, f"{unknown} tokens whose kid the verifier could not find")
    finally:
        c.close()


def test_pickup_shared_through_store():
    """activate_when_seen_by [gw-1]: gw-1 fetches only from a follower; the leader's gate
    sees it through the store's pickup records and activates (no ceiling: it is 1 h)."""
    def setup(*a, **kw):
        return Setup(*a, keyset_policy={"api": {"activate_when_seen_by": ["gw-1"],
                                                "activate_when_seen_ceiling": "1h"}}, **kw)
    c = Cluster(KEYMGR, KEYMGRD, setup=setup)
    try:
        lead = start_cluster(c)[0]
        deferred = c.nodes[lead].wait_event("activation-deferred", keyset="api", timeout=120)
        kid = deferred["kid"]
        follower = [i for i in range(c.n) if i != lead][0]
        path = "/dev/.well-known/jwks.json"

        # a name no policy lists is not written into the store (made-up names cannot grow it)
        check(c.nodes[follower].http("GET", path, {"Keymgr-Verifier": "made-up"})[0] == 200,
              "the follower's JWKS for an unlisted name")

        def gate_passed():
            check(c.leaders() == [lead], "the leader changed during the test")
            st, _, body = c.nodes[follower].http("GET", path, {"Keymgr-Verifier": "gw-1"})
            check(st == 200, f"the follower's JWKS: {st}")
            ev = c.nodes[lead].events("activation-gate", keyset="api", kid=kid)
            return ev[0] if ev and kid.encode() in body else None
        ev = wait_for(gate_passed, "the leader's gate to see gw-1's fetch from a follower",
                      60, step=0.5)
        check(ev["result"] == "seen-by-all", f"gate: {ev}")
        check(not c.nodes[lead].events("activation-ceiling", kid=kid), "activated by the ceiling")
        rows = c.db("SELECT verifier, path FROM dev.verifier_pickups")
        check(f"gw-1|{path}" in rows.splitlines(), f"the store's pickup rows: {rows!r}")
        check("made-up" not in rows, f"an unlisted name in the store: {rows!r}")
        wait_for(lambda: {k["kid"]: k["state"] for k in c.s.keys("dev/api")}.get(kid) ==
                 "active", "the gated key active", 60)
        one_active(c)
        audit_ok(c)
    finally:
        c.close()


def start_fault_cluster(c):
    """Every node loads the fault module in front of SoftHSM, each with its own (empty) rules
    file; returns (rules files, leader, its epoch) once the first key is active."""
    c.s.env["KEYMGR_P11FAULT_MODULE"] = c.s.module
    c.s.module = FAULT_MODULE
    c.s.write_config()
    rules = [os.path.join(c.s.dir, f"rules{i}") for i in range(c.n)]
    c.s.keyset_create("dev/api")
    for i in range(c.n):
        open(rules[i], "w").close()
        c.s.env["KEYMGR_P11FAULT_FILE"] = rules[i]
        c.start(i)
    c.s.env.pop("KEYMGR_P11FAULT_FILE")
    lead = wait_for(lambda: c.leaders(), "a leader", 60)[0]
    wait_for(lambda: c.db("SELECT count(*) FROM dev.keys WHERE state = 'active'") == "1",
             "the first key active", 60)
    return rules, lead, c.lease(lead)["epoch"]


def test_leader_killed_in_key_generation():
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        rules, lead, epoch = start_fault_cluster(c)
        with open(rules[lead], "w") as f:
            f.write("C_GenerateKeyPair:KILL\n")
        c.nodes[lead].proc.wait(timeout=120)
        check(c.nodes[lead].proc.returncode == -signal.SIGKILL,
              f"the leader exited {c.nodes[lead].proc.returncode}, not by SIGKILL")
        check(c.db("SELECT count(*) FROM dev.keys WHERE pending") == "1",
              "the killed leader left no committed intent")
        new = wait_for(lambda: c.leaders(), "a new leader", 60)[0]
        check(c.lease(new)["epoch"] == epoch + 1, "the new leader's epoch is not +1")
        c.nodes[new].wait_event("reconcile", action="abandon", timeout=60)
        wait_for(lambda: c.db("SELECT count(*) FROM dev.keys WHERE pending") == "0",
                 "no pending intent", 60)
        serial = int(c.db("SELECT value FROM dev.counters WHERE name = 'jwks_serial'"))
        wait_for(lambda: int(c.db("SELECT value FROM dev.counters WHERE name = "
                                  "'jwks_serial'")) > serial, "a rotation by the new leader", 60)
        one_active(c)
        rec = json.loads(c.s.run("reconcile", "dev", "--dry-run", "--json").stdout)
        check(rec["findings"] == [] and rec["attention"] == 0,
              f"reconcile --dry-run after the takeover: {rec}")
        audit_ok(c)
    finally:
        c.close()


def test_cli_change_reaches_every_node():
    """A change made outside keymgrd (`keymgr rotate`, then `keymgr revoke`, told to no node)
    is served by every node without waiting for a poll: the store's change notice wakes the
    leader, which re-reads the store and writes the documents, whose notice wakes the
    followers. The nodes poll once an hour here, so the poll cannot be what brings it."""
    def setup(*a, **kw):
        return Setup(*a, policy={"rotation_period": "1h"}, **kw)
    c = Cluster(KEYMGR, KEYMGRD, setup=setup, extra_daemon="poll_interval: 3600")
    try:
        start_cluster(c)
        def kids_everywhere():
            doc = identical(c)
            return {k["kid"] for k in json.loads(doc[1])["keys"]} if doc else None
        before = wait_for(lambda: (lambda k: k if k and len(k) == 1 else None)(
            kids_everywhere()), "one key served by every node", 60)
        # The configuration's control socket is no node's (each has its own): no node is told.
        new = json.loads(c.s.run("rotate", "dev/api", "--json").stdout)["kid"]
        check(new not in before, f"rotate gave a served key: {new}")
        wait_for(lambda: (kids_everywhere() or set()) >= before | {new},
                 "the rotated key served by every node", 60, step=0.2)
        c.s.run("revoke", "--env", "dev", "--reason", "test: compromised", "--", new)
        wait_for(lambda: (lambda k: k is not None and new not in k)(kids_everywhere()),
                 "the revoked key gone from every node", 60, step=0.2)
        check(any(c.nodes[i].events("store-change", keyset="api") for i in c.alive()),
              "no node logged the outside change")
        audit_ok(c)
    finally:
        c.close()


def test_change_documents_in_its_transaction():
    """A change's documents are written by the change's own transaction, not by a node after
    it: with every node stopped (SIGSTOP), `keymgr rotate` then `keymgr revoke` leave the
    store's document already holding each result, under that change's JWKS serial. Woken,
    every node serves exactly those bytes: the leader's own rendering is the same."""
    def setup(*a, **kw):
        return Setup(*a, policy={"rotation_period": "1h"}, **kw)
    c = Cluster(KEYMGR, KEYMGRD, setup=setup, extra_daemon="poll_interval: 3600")

    def stored():
        serial = int(c.db(f"SELECT serial FROM dev.jwks_documents WHERE path = '{ENV_DOC}'"))
        latest = int(c.db("SELECT max(serial) FROM dev.jwks_versions"))
        body = store_doc(c)
        return serial, latest, body, {k["kid"] for k in json.loads(body)["keys"]}
    try:
        start_cluster(c)
        # idle: the first key active, so that no node is stopped inside a change
        wait_for(lambda: c.db("SELECT kid FROM dev.keys WHERE state = 'active'"),
                 "the first key active", 60)
        _, _, _, before = wait_for(lambda: (lambda d: d if d and identical_as_stored(c) else
                                            None)(stored()), "every node serving the store's "
                                   "document", 60)
        for i in range(c.n):
            c.nodes[i].proc.send_signal(signal.SIGSTOP)
            c.stopped.add(i)
        # told to no node: a stopped one would keep the CLI waiting for its answer
        c.s.env["KEYMGR_CONTROL_SOCKET"] = os.path.join(c.s.dir, "no-node.sock")
        try:
            new = json.loads(c.s.run("rotate", "dev/api", "--json").stdout)["kid"]
            s1, latest, _, kids = stored()
            check(kids == before | {new}, f"after rotate, the stored document lists {kids}, "
                  f"not {before | {new}}")
            check(s1 == latest, f"stored under serial {s1}, the change's is {latest}")
            c.s.run("revoke", "--env", "dev", "--reason", "test: compromised", "--", new)
            s2, latest, body, kids = stored()
            check(kids == before, f"after revoke, the stored document lists {kids}")
            check(s2 == latest and s2 > s1, f"stored under serial {s2} (rotate's {s1}), the "
                  f"change's is {latest}")
        finally:
            del c.s.env["KEYMGR_CONTROL_SOCKET"]
            for i in range(c.n):
                c.nodes[i].proc.send_signal(signal.SIGCONT)
            c.stopped.clear()
        etag, served_body = wait_for(lambda: identical_as_stored(c), "every node serving the "
                                     "store's document", 60, step=0.2)
        check(served_body == body, "the document served is not the one the revoke wrote")
        check(stored()[0] == s2, "a node rewrote the document the revoke wrote")
        audit_ok(c)
    finally:
        c.close()


def test_reload_onto_another_store():
    """`keymgr reload` after the environment's store moved to another schema: the node hands
    the old store's lease over and leads the new store (its lease row, its first key); its
    lease thread no longer renews the old one."""
    c = Cluster(KEYMGR, KEYMGRD, nodes=1)
    try:
        start_cluster(c)
        live = "SELECT count(*) FROM {}.leader_lease WHERE expires_at > now() AND holder <> ''"
        check(c.db(live.format("dev")) == "1", "no lease in the first store")
        c.s.stores["dev"] = c.pg.uri("keymgr", "dev2")
        c.s.write_config()
        c.s.keyset_create("dev/api")
        p = subprocess.run([c.s.keymgr_bin, "-c", c.s.config, "reload", "--socket",
                            c.socket(0)], env=c.s.env, capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0, f"reload: {p.returncode} {p.stderr}")
        wait_for(lambda: c.db(live.format("dev2")) == "1", "the new store's lease taken", 60)
        wait_for(lambda: c.db(live.format("dev")) == "0", "the old store's lease given up", 60)
        c.nodes[0].wait_event("lease", result="released")
        active = wait_for(lambda: c.db("SELECT kid FROM dev2.keys WHERE state = 'active'"),
                          "a key active in the new store", 60)
        wait_for(lambda: active.encode() in served(c)[0][1], "the new store's key served", 60)
    finally:
        c.close()


def fenced_metric(node):
    """keymgr_fenced_writes_total{env="dev"} on the node's /metrics."""
    for line in node.metrics().splitlines():
        if line.startswith('keymgr_fenced_writes_total{env="dev"}'):
            return int(line.split()[-1])
    raise Failure("no keymgr_fenced_writes_total for dev on /metrics")


def test_deposed_leader_write_is_fenced():
    """The leader is held inside its key generation (the fault module's HOLD: its intent is
    committed, its pass has the change lock and is fenced by holder+epoch), then SIGSTOPped
    past its lease. Another node leads at epoch + 1. Released and SIGCONTed, the deposed
    leader goes on with its pass: its confirmation is refused by the fence, counted on its
    /metrics, logged; it steps down, and the store and the audit chain hold nothing of it."""
    c = Cluster(KEYMGR, KEYMGRD)
    try:
        rules, lead, epoch = start_fault_cluster(c)
        old = c.nodes[lead]
        check(fenced_metric(old) == 0, "fenced writes before the test")
        hold = os.path.join(c.s.dir, "hold")
        with open(rules[lead], "w") as f:
            f.write(f"C_GenerateKeyPair:HOLD={hold}\n")
        # its next rotation commits the intent, then waits inside the token's generation
        wait_for(lambda: c.db("SELECT count(*) FROM dev.keys WHERE pending") == "1",
                 "the leader's intent, held in its key generation", 120)
        cka = c.db("SELECT encode(cka_id, 'hex') FROM dev.keys WHERE pending")
        old.proc.send_signal(signal.SIGSTOP)
        c.stopped.add(lead)
        try:
            new = wait_for(lambda: [i for i in c.leaders() if i != lead], "a new leader",
                           60)[0]
            check(c.lease(new)["epoch"] == epoch + 1, "the new leader's epoch is not +1")
            # The deposed leader, still stopped, holds the change lock in its pass: the new
            # leader takes it over (its lease epoch is newer) and reconciles now, not after
            # the lock row's expiry of 120 s.
            wait_for(lambda: c.db("SELECT count(*) FROM dev.keys WHERE pending") == "0",
                     "the new leader's reconcile while the deposed leader is stopped", 60)
            check(c.nodes[lead].proc.poll() is None, "the deposed leader is gone")
            seq0 = int(c.db("SELECT seq FROM dev.audit_head"))
            with open(hold, "w"):
                pass   # the token call goes on once the process runs again
        finally:
            old.proc.send_signal(signal.SIGCONT)
            c.stopped.discard(lead)
        # awake, it finishes the generation and writes the confirmation: refused
        n = wait_for(lambda: fenced_metric(old), "a refused write on the deposed node's "
                     "/metrics", 60)
        failed = old.wait_event("keyset-failed", keyset="api", timeout=60)
        check("no longer holds the leader lease" in failed["error"],
              f"the deposed node's failed pass: {failed}")
        check(old.events("lease", result="stepped-down"), "no step-down logged")
        v = wait_for(lambda: (lambda x: x if x and not x["leader"] else None)(c.lease(lead)),
                     "the deposed node stepped down", 60)
        check(v["fenced_writes"] == n, f"status and /metrics disagree: {v} / {n}")
        # nothing of it in the store: no audit event of its pid after the handover, its
        # intent never confirmed (the new leader abandons it), no fork of the chain
        pid = old.proc.pid
        wait_for(lambda: c.db("SELECT count(*) FROM dev.keys WHERE pending") == "0",
                 "the new leader's reconcile of the intent", 60)
        mine = c.db(f"SELECT count(*) FROM dev.audit_events WHERE actor_pid = {pid} AND "
                    f"seq > {seq0}")
        check(mine == "0", f"{mine} audit events of the deposed node after the handover")
        row = c.db(f"SELECT state || ',' || coalesce(kid, '') FROM dev.keys WHERE "
                   f"cka_id = decode('{cka}', 'hex')")
        check(row.endswith(","), f"the deposed node's key was confirmed: {row}")
        before = c.db(f"SELECT count(*) FROM dev.audit_events WHERE actor_pid = {pid}")
        one_active(c)
        audit_ok(c)
        rec = json.loads(c.s.run("reconcile", "dev", "--dry-run", "--json").stdout)
        check(rec["findings"] == [] and rec["attention"] == 0,
              f"reconcile --dry-run after the refused write: {rec}")
        print(f"     {n} fenced write(s) counted on the deposed node; its intent left "
              f"{row.rstrip(',')} by the new leader; "
              f"{before} audit events of it, all before the handover", flush=True)
    finally:
        c.close()


# Under the sanitizers (a fifth argument, "lean"): one representative of each part (failover,
# documents, shared pickups, takeover reconcile); the whole list runs in the plain build.
LEAN = {"SIGKILL of the leader fails over", "identical JWKS on every node",
        "the leader killed in its key generation",
        "a verifier seen by a follower lets the leader activate"}

if __name__ == "__main__":
    lean = len(sys.argv) > 5 and sys.argv[5] == "lean"
    sys.exit(run_tests([t for t in [
        ("one leader through rotations", test_one_leader_through_rotations),
        ("SIGKILL of the leader fails over", test_sigkill_leader_fails_over),
        ("SIGSTOP of the leader: it steps down", test_sigstop_leader_steps_down),
        ("identical JWKS on every node", test_identical_jwks_on_every_node),
        ("PostgreSQL restarted", test_postgresql_restart),
        ("a verifier through rotations", test_verifier_through_rotations),
        ("the leader killed in its key generation", test_leader_killed_in_key_generation),
        ("a verifier seen by a follower lets the leader activate",
         test_pickup_shared_through_store),
        ("a CLI change reaches every node without a poll", test_cli_change_reaches_every_node),
        ("a change's documents are written by its own transaction",
         test_change_documents_in_its_transaction),
        ("a reload onto another store takes its lease", test_reload_onto_another_store),
        ("a deposed leader's write is fenced", test_deposed_leader_write_is_fenced),
    ] if not lean or t[0] in LEAN]))
