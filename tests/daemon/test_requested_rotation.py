# SPDX-License-Identifier: Apache-2.0
"""A requested rotation (`keymgr rotate`) activates its successor at the time it printed.

Every process runs under an injected clock: libfaketime (Debian's libfaketime) preloaded with
a frozen wall clock read from a file that the test rewrites, the monotonic clock left real.
Nothing sleeps: the test moves the clock and waits for conditions. (A change may be recorded
one second after the clock when taking the change lock took a moment: the store rounds such
a wait up, never down. The checks allow that second where a time comes from the clock, and
none where it comes from a recorded time.)

  - `keymgr apply`: nothing at the promised time minus one second, the activation at it;
  - keymgrd: `plan` and `status` show the activation beforehand; when the clock reaches the
    time, keymgrd activates the successor within one pass (its activation is recorded at
    exactly that second) and signs with it;
  - standby: a young standby becomes the successor at its publish time + publish_lead and a
    new standby is made at once; a standby published >= publish_lead ago is promoted at once;
  - a second `rotate` while one is pending adds nothing (exit 0) and names the pending key;
    `--force` then asks for another, which follows at its own time;
  - the stored request (keys.activate_at) and the key.schedule audit event hold the time
    `rotate` printed.
"""
import calendar
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon_fixture import (FAKETIME, Clock, Daemon, Setup, check, run_tests,  # noqa: E402
                            wait_for)

# Realistic timings: P (20m) >= M (15m) + S (1m); Ret (1h) >= T (10m) + M + S; R (30d) > P.
POLICY = {
    "rotation_period": "30d", "jwks_max_age": "15m", "max_token_ttl": "10m",
    "clock_skew": "1m", "publish_lead": "20m", "retire_retention": "1h",
    "destroy_after": "1d",
}
P = 20 * 60
T0 = 1_900_000_000 - 1_900_000_000 % 60      # a whole minute, 2030-03-17


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_iso(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def near(recorded, clock):
    """A time recorded by a change made when the injected clock read `clock`."""
    return clock <= recorded <= clock + 1


def make(keymgr, keymgrd, standby):
    s = Setup(keymgr, keymgrd, envs=("dev",), policy=dict(POLICY, standby=str(standby).lower()))
    clock = Clock(s, T0)
    s.keyset_create("dev/api")
    first = json.loads(s.run("rotate", "dev/api", "--json").stdout)
    check(first["outcome"] == "first" and near(parse_iso(first["times"]["active"]), T0),
          f"first rotation under the injected clock: {first}")
    return s, clock, first


def db(s, sql, *args):
    c = sqlite3.connect(f"file:{s.dir}/dev.db?mode=ro", uri=True)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def state(s, kid):
    return db(s, "SELECT state FROM keys WHERE kid = ?", kid)[0][0]


def rotate(s, *extra):
    p = s.run("rotate", "dev/api", "--json", *extra)
    return json.loads(p.stdout)


def test_apply_activates_at_the_printed_time(keymgr, keymgrd):
    s, clock, first = make(keymgr, keymgrd, standby=False)
    try:
        clock.set(T0 + 100)
        nxt = rotate(s)
        t1 = parse_iso(nxt["activates_at"])
        check(nxt["outcome"] == "new" and near(t1, T0 + 100 + P) and
              t1 == parse_iso(nxt["times"]["published"]) + P,
              f"rotate without a standby: {nxt}")
        # Stored and audited with the same time.
        check(db(s, "SELECT activate_at FROM keys WHERE kid = ?", nxt["kid"]) == [(t1,)],
              "keys.activate_at differs from the printed time")
        ev = db(s, "SELECT after FROM audit_events WHERE action = 'key.schedule' AND kid = ?",
                nxt["kid"])
        check(len(ev) == 1 and json.loads(ev[0][0])["activate_at"] == t1,
              f"key.schedule audit event: {ev}")
        # plan shows the activation beforehand, at that time.
        plan = json.loads(s.run("plan", "dev/api", "--horizon", "1d", "--json").stdout)
        acts = [a for a in plan[0]["events"] if a["action"] == "activate"]
        check(acts and acts[0]["key"] == nxt["kid"] and acts[0]["at"] == iso(t1),
              f"plan does not show the requested activation at {iso(t1)}: {plan}")
        # A second rotate while one is pending: nothing added, exit 0, the pending key named.
        p = s.run("rotate", "dev/api")
        check(f"a rotation is already pending: {nxt['kid']} activates at {iso(t1)}" in p.stdout,
              f"pending rotation: {p.stdout}")
        check(len(s.keys("dev/api")) == 2, "a pending rotation added a key")
        # One second early: nothing; at the second: the successor signs, the old key retires.
        clock.set(t1 - 1)
        s.run("apply", "dev/api")
        check(state(s, nxt["kid"]) == "published", "activated before the printed time")
        clock.set(t1)
        s.run("apply", "dev/api")
        check(state(s, nxt["kid"]) == "active" and state(s, first["kid"]) == "retired",
              "apply at the printed time did not rotate")
        got = db(s, "SELECT activated_at FROM keys WHERE kid = ?", nxt["kid"])[0][0]
        check(near(got, t1), f"activation recorded at {got}, not at {t1}")
        # --force with nothing pending is an ordinary request; --force with one pending asks
        # for another, which follows at its own time.
        clock.set(t1 + 60)
        a = rotate(s)
        b = rotate(s, "--force")
        ta, tb = parse_iso(a["activates_at"]), parse_iso(b["activates_at"])
        check(a["outcome"] == "new" and b["outcome"] == "new" and near(ta, t1 + 60 + P) and
              ta <= tb <= ta + 1, f"another rotation: {a} {b}")
        clock.set(ta)
        s.run("apply", "dev/api")
        check(state(s, a["kid"]) == "active", "the first requested successor did not activate")
        clock.set(ta + 2)
        s.run("apply", "dev/api")
        check(state(s, b["kid"]) == "active" and state(s, a["kid"]) == "retired",
              "the second requested successor did not follow")
    finally:
        s.close()


def test_keymgrd_activates_within_one_pass(keymgr, keymgrd):
    s, clock, first = make(keymgr, keymgrd, standby=False)
    d = None
    try:
        d = Daemon(s)
        clock.set(T0 + 30)
        nxt = rotate(s)
        t1 = parse_iso(nxt["activates_at"])
        check(near(t1, T0 + 30 + P), f"rotate: {nxt}")
        # status (keymgrd's own planner run) names the activation and its time.
        st = json.loads(s.run("status", "--json").stdout)
        ne = st["environments"][0]["keysets"][0]["next_event"]
        check(ne["action"] in ("retire", "activate") and ne["at"] in (t1, iso(t1)),
              f"status next_event: {ne}")
        # A pass one second before changes nothing.
        clock.set(t1 - 1)
        s.run("tick")
        check(state(s, nxt["kid"]) == "published", "keymgrd activated early")
        # The clock reaches the time: keymgrd's own loop (no tick) activates it.
        clock.set(t1)
        d.wait_event("action", action="activate", kid=nxt["kid"], timeout=30)
        got = db(s, "SELECT activated_at FROM keys WHERE kid = ?", nxt["kid"])[0][0]
        check(near(got, t1), f"keymgrd's activation at {got}, not at the printed {t1}")
        check(state(s, first["kid"]) == "retired", "the old key did not retire")
        wait_for(lambda: d.kids("/dev/.well-known/jwks.json") and
                 nxt["kid"] in d.kids("/dev/.well-known/jwks.json"), "the successor served")
        jwt_text = s.sign("dev/api", ttl="5m")
        header = json.loads(__import__("base64").urlsafe_b64decode(
            jwt_text.split(".")[0] + "=="))
        check(header["kid"] == nxt["kid"], f"signed with {header['kid']}, not the successor")
    finally:
        if d is not None:
            d.stop()
        s.close()


def test_standby_rules(keymgr, keymgrd):
    s, clock, first = make(keymgr, keymgrd, standby=True)
    try:
        keys = s.keys("dev/api")
        standby = [k["kid"] for k in keys if k["state"] == "published"]
        check(len(standby) == 1, f"the first rotation made no standby: {keys}")
        # Young standby (published at T0, < publish_lead): the successor at T0 + P, and a
        # new standby at once.
        clock.set(T0 + 300)
        nxt = rotate(s)
        t1 = parse_iso(nxt["activates_at"])
        check(nxt["outcome"] == "scheduled" and nxt["kid"] == standby[0] and
              t1 == parse_iso(nxt["times"]["published"]) + P and near(t1, T0 + P),
              f"young standby: {nxt}")
        pub = [k for k in s.keys("dev/api") if k["state"] == "published"]
        check(len(pub) == 2, f"no new standby next to the scheduled successor: {pub}")
        t_sb = max(parse_iso(k["times"]["published"]) for k in pub)
        clock.set(t1)
        s.run("apply", "dev/api")
        check(state(s, nxt["kid"]) == "active", "the standby did not activate at its time")
        remaining = [k["kid"] for k in s.keys("dev/api") if k["state"] == "published"]
        check(len(remaining) == 1 and remaining[0] not in (first["kid"], nxt["kid"]),
              f"standby after the rotation: {remaining}")
        # A standby published >= publish_lead ago: promoted at once, a new standby made.
        clock.set(t_sb + P)
        p = rotate(s)
        check(p["outcome"] == "promoted" and p["kid"] == remaining[0] and
              p["state"] == "active" and p["previous_kid"] == nxt["kid"],
              f"ready standby not promoted: {p}")
        got = db(s, "SELECT activated_at FROM keys WHERE kid = ?", p["kid"])[0][0]
        check(near(got, t_sb + P), f"promotion not at once: {got} != {t_sb + P}")
        pub = [k["kid"] for k in s.keys("dev/api") if k["state"] == "published"]
        check(len(pub) == 1, f"no new standby after the promotion: {pub}")
    finally:
        s.close()


def main():
    keymgr, keymgrd = sys.argv[1], sys.argv[2]
    if not os.path.exists(FAKETIME):
        print(f"FAIL {FAKETIME} is missing: scripts/deps installs libfaketime")
        return 1
    return run_tests([
        ("apply_activates_at_the_printed_time",
         lambda: test_apply_activates_at_the_printed_time(keymgr, keymgrd)),
        ("keymgrd_activates_within_one_pass",
         lambda: test_keymgrd_activates_within_one_pass(keymgr, keymgrd)),
        ("standby_rules", lambda: test_standby_rules(keymgr, keymgrd)),
    ])


if __name__ == "__main__":
    sys.exit(main())
