# SPDX-License-Identifier: Apache-2.0
"""Propagation gating (policy activate_when_seen_by / activate_when_seen_ceiling).

Key set "api" waits for verifier gw-1 (ceiling 1h: never reached here); key set "other"
waits for verifier "absent", which never fetches (ceiling 3s).
  - api's successor stays published-not-active past its planned activation while gw-1 has
    not fetched; fetches without the header (tracked by address) or under another name do not
    count; `keymgr status` lists gw-1 under not_seen_by; /metrics says deferred.
  - gw-1 then sends a conditional request (If-None-Match: the current ETag -> 304) naming
    itself: that proves it holds the key, and the key activates; the log says seen-by-all.
  - other's successor activates once the ceiling passes, with a warning log line and
    keymgr_activation_ceiling_total counting it.
A flood of made-up Keymgr-Verifier names (4,200, more than the 4,096-row verifier table)
does not evict the row of gw-1, the name a policy waits for: /metrics shows it kept, the
others evicted, and gw-1's fetch still counts for the gate.

Usage: /usr/bin/python3 test_gating.py KEYMGR KEYMGRD
"""
import http.client
import json
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

ENV_PATH = "/dev/.well-known/jwks.json"


def state_of(s, ref, kid):
    return {k["kid"]: k["state"] for k in s.keys(ref)}.get(kid)


def flood_of_names(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd, keyset_policy={
        "api": {"activate_when_seen_by": ["gw-1"], "activate_when_seen_ceiling": "1h"},
    })
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        pub = d.wait_event("action", count=2, action="publish", keyset="api", timeout=60)
        d.wait_event("activation-deferred", keyset="api", kid=pub["kid"], timeout=60)
        # The flood first, on one keep-alive connection (loopback, bounded in count), with a
        # different name each time; then gw-1 fetches; then a second flood.
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)

        def flood(tag):
            for i in range(4200):
                st = d.http("GET", ENV_PATH, {"Keymgr-Verifier": f"{tag}-{i}"}, conn=conn)[0]
                check(st == 200, f"flood request {i}: {st}")
        flood("fake")
        etag = d.http("GET", ENV_PATH)[1]["etag"]
        check(d.http("GET", ENV_PATH, {"If-None-Match": etag, "Keymgr-Verifier": "gw-1"})[0]
              == 304, "gw-1's conditional request")
        flood("more")
        conn.close()
        m = d.metrics()
        check("keymgr_http_verifiers_listed 1\n" in m, "gw-1's row was not kept as listed")
        check("keymgr_http_verifiers 4096\n" in m, "the table is not at its bound")
        ev = [l for l in m.splitlines() if l.startswith("keymgr_http_verifier_evictions_total ")]
        check(ev and int(ev[0].split()[1]) >= 2 * 4200 - 4096, f"evictions: {ev}")
        # The gate still finds gw-1's fetch: the successor activates.
        s.run("tick", "--socket", s.socket)
        ev = d.wait_event("activation-gate", keyset="api", kid=pub["kid"])
        check(ev["result"] == "seen-by-all", f"gate after the flood: {ev}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


def run(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd, keyset_policy={
        "api": {"activate_when_seen_by": ["gw-1"], "activate_when_seen_ceiling": "1h"},
        "other": {"activate_when_seen_by": ["absent"], "activate_when_seen_ceiling": "3s"},
    })
    d = None
    try:
        s.keyset_create("dev/api")
        s.keyset_create("dev/other")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        first = [k["kid"] for k in s.keys("dev/api") if k["state"] == "active"][0]

        # api: the successor is published, then held back.
        pub = d.wait_event("action", count=2, action="publish", keyset="api", timeout=60)
        succ = pub["kid"]
        d.wait_event("activation-deferred", keyset="api", kid=succ, timeout=60)
        check(d.events("activation-deferred", keyset="api")[0]["not_seen_by"] == "gw-1",
              "deferral does not name gw-1")
        # Not counted: an unnamed client, and another name.
        d.http("GET", ENV_PATH)
        d.http("GET", "/dev/api/jwks.json", {"Keymgr-Verifier": "gw-2"})
        d.http("GET", ENV_PATH, {"Keymgr-Verifier": "bad name!"})
        s.run("tick", "--socket", s.socket)
        check(state_of(s, "dev/api", succ) == "published", "activated without gw-1")
        check(state_of(s, "dev/api", first) == "active", "the old key stopped signing")
        # The listener reports fetches to keymgrd as they happen, in another process: the
        # evidence arrives a moment after the fetch.
        def pending():
            st = json.loads(s.run("status", "dev/api", "--socket", s.socket, "--json").stdout)
            ks = st["environments"][0]["keysets"][0]
            p = [p for p in ks["pending"] if p["kid"] == succ][0]
            return (ks, p) if "gw-2" in p["seen_by"] and "127.0.0.1" in p["seen_by"] else None
        ks, pend = wait_for(pending, "the other fetchers in keymgr status", timeout=10)
        check(ks["deferred"] and "gw-1" in pend["not_seen_by"] and "gw-1" not in pend["seen_by"],
              f"status evidence: {pend}")
        text = s.run("status", "dev/api", "--socket", s.socket).stdout
        check("not seen by: gw-1" in text, f"status text: {text}")
        m = d.metrics()
        check('keymgr_activation_deferred{env="dev",keyset="api"} 1' in m, "deferred metric")

        # gw-1 proves it holds the current document with a 304.
        etag = d.http("GET", ENV_PATH)[1]["etag"]
        st304 = d.http("GET", ENV_PATH, {"If-None-Match": etag, "Keymgr-Verifier": "gw-1"})[0]
        check(st304 == 304, f"conditional request: {st304}")
        ev = d.wait_event("activation-gate", keyset="api", kid=succ)
        check(ev["result"] == "seen-by-all", f"gate: {ev}")
        wait_for(lambda: state_of(s, "dev/api", succ) == "active", "api successor active")
        check(state_of(s, "dev/api", first) == "retired", "the old key was not retired")

        # other: nobody named "absent" ever fetches: the ceiling activates it, loudly.
        ev = d.wait_event("activation-ceiling", keyset="other", timeout=90)
        check(ev["level"] == "warning" and ev["not_seen_by"] == "absent", f"ceiling: {ev}")
        wait_for(lambda: state_of(s, "dev/other", ev["kid"]) == "active", "other activated")
        m = d.metrics()
        check('keymgr_activation_ceiling_total{env="dev",keyset="other"} 1' in m,
              "ceiling metric")
        check('keymgr_activation_ceiling_total{env="dev",keyset="api"} 0' in m,
              "api counted as ceiling")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([("gating.seen-by-and-ceiling", lambda: run(sys.argv[1], sys.argv[2])),
                        ("gating.flood-of-names",
                         lambda: flood_of_names(sys.argv[1], sys.argv[2]))]))
