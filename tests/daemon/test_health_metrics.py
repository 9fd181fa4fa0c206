# SPDX-License-Identifier: Apache-2.0
"""/healthz and /metrics of keymgrd, and the environment restriction.

healthy:   one environment with a token: /healthz 200 "ok"; /metrics has keys by state, the
           next event, the active key's age, the last successful tick, actions applied,
           HTTP requests by status and the JWKS serial.
unhealthy: a second environment whose token does not exist: /healthz 503 naming it; the
           token is retried with exponential backoff (1 s, 2 s, 4 s...: logged), never in a
           hot loop; the healthy environment is still served.
--env:     `keymgrd --env dev` serves dev only, never opens the other environment's token
           or store, and is healthy.

Usage: /usr/bin/python3 test_health_metrics.py KEYMGR KEYMGRD
"""
import json
import os
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402


def metric(text, name, **labels):
    for line in text.splitlines():
        m = re.match(r"([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_healthy(keymgr, keymgrd):
    s = Setup(keymgr, keymgrd)
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="api")
        wait_for(lambda: d.http("GET", "/healthz")[0] == 200, "healthy")
        st, h, b = d.http("GET", "/healthz")
        check(b == b"ok\n" and h["cache-control"] == "no-store", f"healthz: {b!r} {h}")
        d.http("GET", "/nope")
        m = d.metrics()
        check(metric(m, "keymgr_keys", env="dev", keyset="api", state="active") == 1, "keys")
        nxt = metric(m, "keymgr_keyset_next_event_seconds", env="dev", keyset="api")
        check(nxt is not None and 0 <= nxt <= 8, f"next event {nxt}")
        check(metric(m, "keymgr_active_key_age_seconds", env="dev", keyset="api") is not None,
              "active key age")
        check(metric(m, "keymgr_last_successful_tick_timestamp_seconds") > 0, "last tick")
        check(metric(m, "keymgr_actions_total", env="dev", action="generate", result="ok") >= 1,
              "actions applied")
        check(metric(m, "keymgr_actions_total", env="dev", action="generate",
                     result="failed") == 0, "actions failed")
        check(metric(m, "keymgr_http_requests_total", code="404") >= 1, "HTTP by status")
        check(metric(m, "keymgr_jwks_serial", path="/dev/.well-known/jwks.json") >= 1, "serial")
        check(metric(m, "keymgr_token_up", env="dev") == 1, "token up")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None:
            d.stop()
        s.close()


def test_unhealthy_and_env_restriction(keymgr, keymgrd):
    # No scheduled rotation: dev must hold exactly its first key while the broken token's
    # three retries (1 + 2 + 4 s, longer under ASan) go by; with the 8 s test policy dev's
    # successor was published meanwhile (5 s after activation) and dev had two keys.
    s = Setup(keymgr, keymgrd, envs=("dev", "broken"), missing_tokens=("broken",),
              policy={"rotation_period": "10m"})
    d = None
    try:
        s.keyset_create("dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("token", env="broken", count=3, timeout=60)
        st, h, b = d.http("GET", "/healthz")
        check(st == 503 and b == b"unhealthy\n", f"healthz (public, no detail): {st} {b!r}")
        st, h, b = d.admin("GET", "/healthz")
        check(st == 503 and b == b"unhealthy\n", f"admin healthz: {st} {b!r}")
        why = json.loads(s.run("status", "--json").stdout)["health_reason"]
        check(why.startswith("broken: token unreachable"), f"status health_reason: {why!r}")
        retries = [int(e["retry_in"]) for e in d.events("token", env="broken")]
        check(retries[:3] == [1, 2, 4], f"token retries are not backed off: {retries}")
        m = d.metrics()
        check(metric(m, "keymgr_token_up", env="broken") == 0, "broken token up")
        check(len(d.kids("/dev/.well-known/jwks.json")) == 1, "dev not served")
        check(d.stop() == 0, "keymgrd did not exit 0")

        # --env dev: the other environment's store is never opened, its token never tried.
        os.unlink(os.path.join(s.dir, "broken.db"))
        d = Daemon(s, "--env", "dev", verbose=False)
        wait_for(lambda: d.http("GET", "/healthz")[0] == 200, "healthy with --env dev")
        check(d.http("GET", "/broken/.well-known/jwks.json")[0] == 404, "broken served")
        check(not d.events("token", env="broken"), "the other token was tried")
        check(not os.path.exists(os.path.join(s.dir, "broken.db")), "the other store opened")
        check(d.stop() == 0, "keymgrd did not exit 0")
        # An unknown --env is refused at startup.
        import subprocess
        p = subprocess.run([keymgrd, "-c", s.config, "--env", "nope", "--port", "0"],
                           env=s.env, capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and "unknown environment 'nope'" in p.stderr,
              f"--env nope: {p.returncode} {p.stderr}")
    finally:
        if d is not None:
            d.stop()
        s.close()


if __name__ == "__main__":
    k, kd = sys.argv[1], sys.argv[2]
    sys.exit(run_tests([
        ("health-metrics.healthy", lambda: test_healthy(k, kd)),
        ("health-metrics.unhealthy-and-env-restriction",
         lambda: test_unhealthy_and_env_restriction(k, kd)),
    ]))
