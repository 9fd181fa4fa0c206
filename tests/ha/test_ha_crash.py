# SPDX-License-Identifier: Apache-2.0
"""The ha suite's crash points (issue 18, docs/ha.md): the leader SIGKILLed at each crash point
of a rotation (keymgr/common/faultpoint.h, KEYMGR_CRASH_AT; a -Dtest_hooks=true build only,
tests/ha/meson.build registers this test nowhere else).

One cluster (tests/ha/ha_fixture.py: three keymgrd nodes, one PostgreSQL, one SoftHSM token
directory) for every point. For each point, in turn:

  - every node stops cleanly (the lease is released); the victim starts alone with
    KEYMGR_CRASH_AT=POINT and takes the lease, the two others start as followers;
  - the victim rotates and kills itself (SIGKILL) at POINT: its log says so, or the case
    fails (a build without the hooks never gets there: it fails, it does not skip);
  - a survivor leads at the victim's epoch + 1, and its log shows the takeover's reconcile
    before any action of its own;
  - then: no pending intent, exactly one active key, the survivors serve identical JWKS
    bytes (the store's document), `keymgr reconcile --dry-run` finds nothing, `keymgr audit
    verify` passes.

Through the whole run a verifier caches the JWKS of a random live node for its max-age
(never refetching early) and checks the kid of tokens signed by random live nodes: it never
meets an unknown kid.

Usage: test_ha_crash.py KEYMGR KEYMGRD [LEASE-SECONDS]
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import jwt  # python3-jwt (/usr/bin/python3)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "signing"))
if len(sys.argv) > 3:
    os.environ["KEYMGR_TEST_HA_LEASE"] = sys.argv[3]   # before ha_fixture reads it
from ha_fixture import ENV_DOC, Cluster, identical_as_stored  # noqa: E402
from daemon_fixture import Failure, check, run_tests, wait_for  # noqa: E402
from signing_fixture import CLAIMS, SignSetup  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]

# The crash points a leader's rotation passes, in the order of a key's life (keyops.c,
# apply.c). apply.after_action counts every action of the victim process: :1 and :2 are its
# first two actions, whichever the plan has first where the previous point left the key set
# (a publication, an activation, a removal...); the key states at each kill are printed.
# revoke.after_record is the CLI's emergency revocation, not a step of the leader's rotation.
POINTS = [
    "generate.after_intent",     # intent committed, no pair in the token yet
    "generate.after_token",      # the token made the pair, the row not confirmed
    "generate.after_confirm",    # kid and JWK stored, not yet published
    "apply.after_action:1",      # the victim's first action done
    "apply.after_action:2",      # its second action done
    "activate.before_commit",    # retire + activate in one open transaction
    "activate.after_commit",     # committed, not yet published by the victim
    "destroy.after_token",       # an old key's objects destroyed, its row not yet moved
]


def count(c, where):
    return int(c.db(f"SELECT count(*) FROM dev.keys WHERE {where}"))


def states(c):
    return c.db("SELECT coalesce(kid, '#' || id) || '=' || state || "
                "CASE WHEN pending THEN '(pending)' ELSE '' END FROM dev.keys ORDER BY id") \
        .replace("\n", " ")


class Verifier(threading.Thread):
    """Caches a random live node's JWKS for its max-age; checks the kid of tokens signed by
    random live nodes against that cache."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.rng = random.Random(18)
        self.stop = threading.Event()
        self.signed = self.unknown = self.refused = 0
        self.kids = set()
        self.errors = []

    def node(self):
        alive = self.c.alive()
        return self.rng.choice(alive) if alive else None

    def run(self):
        cache, until = None, 0.0
        while not self.stop.is_set():
            try:
                if cache is None or time.monotonic() >= until:
                    i = self.node()
                    if i is None:
                        time.sleep(0.2)
                        continue
                    st, h, body = self.c.nodes[i].http("GET", ENV_DOC)
                    if st != 200:
                        self.errors.append(f"node {i}: GET {ENV_DOC}: {st}")
                        continue
                    age = int(h.get("cache-control", "max-age=1").split("max-age=")[1]
                              .split(",")[0])
                    cache, until = {k["kid"] for k in json.loads(body)["keys"]}, \
                        time.monotonic() + age
                i = self.node()
                if i is None:
                    continue
                p = subprocess.run([self.c.s.keymgr_bin, "-c", self.c.s.config, "sign",
                                    "dev/api", "--via", "daemon", "--socket", self.c.socket(i),
                                    "--ttl", "2s", "--claims", json.dumps(CLAIMS)],
                                   env=self.c.s.env, capture_output=True, text=True, timeout=60)
                if p.returncode != 0:
                    self.refused += 1   # busy, or the node died meanwhile
                    continue
                kid = jwt.get_unverified_header(p.stdout.strip())["kid"]
                self.signed += 1
                self.kids.add(kid)
                if kid not in cache:
                    self.unknown += 1
                    self.errors.append(f"node {i} signed with {kid}, not in the verifier's "
                                       f"cached JWKS {sorted(cache)}")
            except OSError:   # a node killed under the request (ConnectionError is one)
                self.refused += 1
            time.sleep(0.1)


def leads(c, i):
    le = c.lease(i)
    return le if le and le["leader"] else None


def crash_at(c, victim, point, ver):
    """One round: the victim leads with KEYMGR_CRASH_AT=point and dies there."""
    for i in c.alive():
        c.nodes[i].stop()
    c.s.env["KEYMGR_CRASH_AT"] = point
    try:
        c.start(victim)
    finally:
        del c.s.env["KEYMGR_CRASH_AT"]   # the followers and the CLI run without it
    # from its log: it may reach the point (an activation already due) before it answers
    acquired = wait_for(lambda: c.nodes[victim].events("lease", result="acquired"),
                        f"node {victim} leading", 60)
    epoch = int(acquired[0]["epoch"])
    for i in range(c.n):
        if i != victim:
            c.start(i)
    proc = c.nodes[victim].proc
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        raise Failure(f"the leader never reached crash point {point} in 180 s (is this a "
                      f"-Dtest_hooks=true build?)") from None
    at = states(c)   # before a survivor can lead: the lease has not expired yet
    check(proc.returncode == -signal.SIGKILL, f"the leader exited {proc.returncode}")
    check(f"KEYMGR_CRASH_AT: killed at {point.split(':')[0]}" in c.nodes[victim].text(),
          f"the leader died, but not at {point}")
    # The dead leader's lease runs out on the database's clock: moved on by the test (the
    # expiry itself is ha.cluster's SIGKILL case), which saves a lease per point.
    c.db("UPDATE dev.leader_lease SET expires_at = now() WHERE epoch = %d" % epoch)
    new = wait_for(lambda: [i for i in c.alive() if leads(c, i)], "a new leader", 90)[0]
    check(c.lease(new)["epoch"] == epoch + 1,
          f"the new leader's epoch {c.lease(new)['epoch']} is not {epoch + 1}")
    # the takeover's reconcile comes before any action of the new leader
    def reconciled():
        lines = c.nodes[new].lines()
        got = [k for k, l in enumerate(lines) if l.get("event") == "lease" and
               l.get("result") == "acquired" and l.get("epoch") == str(epoch + 1)]
        if not got:
            return None
        after = lines[got[0]:]
        rec = [k for k, l in enumerate(after) if l.get("event") == "reconcile" and
               "repaired" in l]
        return (after, rec[0]) if rec else None
    after, rec = wait_for(reconciled, "the new leader's reconcile", 60)
    acts = [l for l in after[:rec] if l.get("event") == "action"]
    check(not acts, f"the new leader acted before reconciling: {acts}")
    check(after[rec].get("failed") == "0", f"the takeover's reconcile: {after[rec]}")
    wait_for(lambda: count(c, "pending") == 0, "no pending intent", 60)
    check(count(c, "state = 'active'") == 1, f"active keys: {states(c)}")
    wait_for(lambda: identical_as_stored(c), "identical JWKS on the survivors", 60)
    rec2 = json.loads(c.s.run("reconcile", "dev", "--dry-run", "--json").stdout)
    check(rec2["findings"] == [] and rec2["attention"] == 0,
          f"reconcile --dry-run after the takeover: {rec2}")
    p = c.s.run("audit", "verify", "dev", "--json", expect=None)
    check(p.returncode == 0, f"audit verify: {p.stdout} {p.stderr}")
    repaired = after[rec].get("repaired")
    print(f"     {point}: keys at the kill {at}; node {new} led at epoch {epoch + 1}, "
          f"reconciled first ({repaired} repaired); verifier {ver.signed} tokens, "
          f"{ver.unknown} unknown kids", flush=True)
    check(not ver.errors, f"verifier: {ver.errors}")


def test_leader_killed_at_each_crash_point():
    c = Cluster(KEYMGR, KEYMGRD, setup=SignSetup)
    ver = Verifier(c)
    try:
        c.s.keyset_create("dev/api")
        for i in range(c.n):
            c.start(i)
        wait_for(lambda: count(c, "state = 'active'") == 1, "the first key active", 60)
        ver.start()
        for k, point in enumerate(POINTS):
            crash_at(c, k % c.n, point, ver)
        ver.stop.set()
        ver.join(timeout=90)
        print(f"     verifier: {ver.signed} tokens, {len(ver.kids)} keys, {ver.unknown} "
              f"unknown kids, {ver.refused} refused or lost to a kill", flush=True)
        check(ver.unknown == 0 and not ver.errors, f"verifier: {ver.errors}")
        check(len(ver.kids) >= 3, f"the verifier saw only {len(ver.kids)} keys")
    finally:
        ver.stop.set()
        c.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        ("the leader SIGKILLed at each crash point of a rotation",
         test_leader_killed_at_each_crash_point),
    ]))
