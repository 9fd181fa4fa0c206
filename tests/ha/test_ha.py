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
    epoch moved on, the audit chain has no fork (`audit verify` passes).

Usage: test_ha.py KEYMGR KEYMGRD
"""
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ha_fixture import LEASE, Cluster  # noqa: E402
from daemon_fixture import Failure, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]
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
        views = [c.lease(i) for i in c.alive()]
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


if __name__ == "__main__":
    sys.exit(run_tests([
        ("one leader through rotations", test_one_leader_through_rotations),
        ("SIGKILL of the leader fails over", test_sigkill_leader_fails_over),
        ("SIGSTOP of the leader: it steps down", test_sigstop_leader_steps_down),
    ]))
