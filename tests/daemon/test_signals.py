# SPDX-License-Identifier: Apache-2.0
"""Reload and stop.

reload:  SIGHUP (and `keymgr reload`) with a broken configuration (YAML error, unknown key,
         unsafe policy) is refused and logged; the old configuration keeps serving the same
         document. SIGHUP with a good changed configuration is applied (new max-age).
moves:   a reload that moves an environment to another http.path and removes another: the
         old paths answer 404 from then on (the environment's document and its key sets'),
         the new ones serve what the store holds, the removed environment is logged.
sigterm: SIGTERM while a key is being generated (RSA-4096 successor, slow in SoftHSM): the
         generation finishes, nothing more starts, keymgrd exits 0, and the store is
         consistent: exactly one active key, no pending rows, every key has a kid, the JWKS
         holds the active key. A restarted keymgrd carries on from there.

Usage: /usr/bin/python3 test_signals.py KEYMGR KEYMGRD
"""
import json
import signal
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

ENV_PATH = "/dev/.well-known/jwks.json"


def test_reload(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd)
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        st, h, body = d.http("GET", ENV_PATH)
        good = s.config_text()
        broken = {
            "yaml": good.replace("environments:", "environments: [", 1),
            "unknown key": good.replace("daemon:\n", "daemon:\n  bogus_key: 1\n", 1),
            "unsafe policy": good.replace("publish_lead: 3s", "publish_lead: 1s"),
        }
        n = 0
        for what, text in broken.items():
            s.write_config(text)
            d.proc.send_signal(signal.SIGHUP)
            n += 1
            ev = d.wait_event("reload", count=n)
            check(ev["result"] == "refused", f"{what}: reload not refused: {ev}")
            check(ev.get("error", "").startswith(s.config), f"{what}: error names no file: {ev}")
            st2, h2, b2 = d.http("GET", ENV_PATH)
            check(st2 == 200 and h2["cache-control"] == h["cache-control"],
                  f"{what}: the old configuration stopped serving")
            check(d.http("GET", "/healthz")[0] == 200, f"{what}: unhealthy after refusal")
        # The CLI verb says why and exits 1.
        p = s.run("reload", "--socket", s.socket, expect=1)
        check("keymgrd:" in p.stderr and s.config in p.stderr, f"reload CLI: {p.stderr}")
        metrics = d.metrics()
        check('keymgr_config_reloads_total{result="failed"} 4' in metrics, "failed reloads")

        # A good change is applied: the caches get max-age 1.
        s.write_config(good.replace("jwks_max_age: 2s", "jwks_max_age: 1s"))
        d.proc.send_signal(signal.SIGHUP)
        ev = d.wait_event("reload", count=n + 2)
        check(ev["result"] == "ok", f"good reload refused: {ev}")
        wait_for(lambda: d.http("GET", ENV_PATH)[1]["cache-control"] == "public, max-age=1",
                 "the new max-age")
        # The reload keeps serving what the store holds (the 8-second policy may rotate in
        # the meantime, so compare with the store, not with the body fetched earlier).
        wait_for(lambda: json.loads(d.http("GET", ENV_PATH)[2]) ==
                 json.loads(s.run("jwks", "dev").stdout),
                 "the served JWKS matches the store after the reload")
        p = s.run("reload", "--socket", s.socket)
        check("reloaded" in p.stdout, f"reload CLI: {p.stdout}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


def test_reload_moves_and_removes(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd, envs=("dev", "stg"))
    d = None
    old = ["/dev/.well-known/jwks.json", "/dev/api/jwks.json",
           "/stg/.well-known/jwks.json", "/stg/api/jwks.json"]
    try:
        s.keyset_create("dev/api")
        s.keyset_create("stg/api")
        d = Daemon(s, verbose=False)
        for path in old:
            wait_for(lambda: d.http("GET", path)[0] == 200, f"{path} served")
        s.envs = ["dev"]
        text = s.config_text().replace("    http:\n", "    http:\n      path: /moved\n", 1)
        check("path: /moved" in text, "the test could not move the environment")
        s.write_config(text)
        d.proc.send_signal(signal.SIGHUP)
        ev = d.wait_event("reload")
        check(ev["result"] == "ok", f"reload refused: {ev}")
        check(d.events("env-removed", env="stg"), "the removed environment was not logged")
        for path in old:
            st = d.http("GET", path)[0]
            check(st == 404, f"{path} still answered {st} after the reload")
        wait_for(lambda: d.http("GET", "/moved/.well-known/jwks.json")[0] == 200,
                 "the moved environment's document")
        wait_for(lambda: json.loads(d.http("GET", "/moved/api/jwks.json")[2]) ==
                 json.loads(s.run("jwks", "dev/api").stdout),
                 "the moved key set's document matches the store")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


def consistent(s, ref):
    keys = s.keys(ref)
    active = [k for k in keys if k["state"] == "active"]
    check(len(active) == 1, f"{len(active)} active keys: {keys}")
    check(not [k for k in keys if k.get("pending")], f"pending rows left: {keys}")
    check(all(k["kid"] for k in keys), "a key without kid")
    jwks = json.loads(s.run("jwks", ref).stdout)
    check(active[0]["kid"] in [k["kid"] for k in jwks["keys"]], "JWKS lacks the active key")
    return keys


def test_sigterm_mid_action(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd, keysets=("big",))
    d = None
    try:
        s.keyset_create("dev/big", "RS256", "--bits", "4096")
        d = Daemon(s)                   # verbose: logs action-start before each action
        d.wait_event("action", action="activate", keyset="big")
        # The successor's generation (the second generate of the key set) is in flight.
        d.wait_event("action-start", count=2, action="generate", keyset="big", timeout=120)
        d.proc.send_signal(signal.SIGTERM)
        check(d.stop() == 0, "keymgrd did not exit 0 on SIGTERM")
        check(d.events("stop"), "no stop event logged")
        gens = d.events("action", action="generate", keyset="big")
        check(len(gens) in (1, 2), "unexpected generations")
        started = [e for e in d.events("action-start", keyset="big")]
        check(started[-1]["action"] == "generate",
              f"an action started after SIGTERM: {started[-1]}")
        keys = consistent(s, "dev/big")
        print(f"  stopped with {len(keys)} keys: {[k['state'] for k in keys]}")
        # A new daemon carries on: the successor gets published. It listens only once the
        # store's documents are published, so the key set is served from its first answer
        # on: never a 404 (tests/daemon/test_restart.py polls across restarts).
        d = Daemon(s, verbose=False)
        def successor_served():
            st, _, b = d.http("GET", "/dev/big/jwks.json")
            check(st == 200, f"the restarted keymgrd answered {st} for a served key set")
            return len(json.loads(b)["keys"]) >= 2
        wait_for(successor_served, "the successor published", timeout=120)
        consistent(s, "dev/big")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    k, kd = sys.argv[1], sys.argv[2]
    sys.exit(run_tests([
        ("signals.reload-broken-and-good", lambda: test_reload(k, kd)),
        ("signals.reload-moves-and-removes", lambda: test_reload_moves_and_removes(k, kd)),
        ("signals.sigterm-mid-action", lambda: test_sigterm_mid_action(k, kd)),
    ]))
