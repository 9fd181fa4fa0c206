# SPDX-License-Identifier: Apache-2.0
"""keymgrd under token faults (issue 8). The environment's module in keymgr.yaml is
keymgr-p11fault wrapping SoftHSM; the test rewrites its rules file while keymgrd runs.

For each fault: the token unavailable at start, the token gone mid-run (the fault module's
CKR_DEVICE_REMOVED, and SoftHSM's token directory moved away), CKR_DEVICE_ERROR,
CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN and a locked PIN:
  - keymgrd keeps serving the last good JWKS (the same body and ETag);
  - /healthz answers 503 naming the problem;
  - it retries with backoff: one "token result=failed" log line per attempt, retry_in
    1 s, 2 s, 4 s (never a hot loop: at most a handful of attempts over several seconds);
  - it recovers by itself once the fault clears (/healthz 200, the same JWKS);
  - the store is intact: PRAGMA integrity_check ok, the same keys in the same states, one
    active key, no pending intent.
A PIN the token refuses (CKR_PIN_INCORRECT) is not presented again (a real token would lock
the PIN): one C_Login, then none, through the backoff's checks and `keymgr tick`, until
`keymgr reload --retry-pin` (tests/fault/test_pin_refusal.py has the whole story).

A running keymgrd notices a fault when it next uses the token: at a due action, at its
periodic check, or at once on `keymgr tick` (which the test uses; the policy here has nothing
due for an hour, so the documents cannot change for another reason).

Usage: test_daemon_faults.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
JWKS = "/dev/.well-known/jwks.json"
# Nothing is due for an hour after the first rotation: documents change only by our hand.
QUIET_POLICY = {"rotation_period": "1h"}


class FaultSetup(Setup):
    """The fixture's token and store, with keymgr.yaml naming the fault module."""

    def __init__(self):
        super().__init__(KEYMGR, KEYMGRD, policy=QUIET_POLICY)
        self.real_module = self.module
        self.rules_path = os.path.join(self.dir, "fault.rules")
        self.calls = os.path.join(self.dir, "fault.calls")
        self.rules("")
        self.env["KEYMGR_P11FAULT_CALLS"] = self.calls
        self.env["KEYMGR_P11FAULT_MODULE"] = self.real_module
        self.env["KEYMGR_P11FAULT_FILE"] = self.rules_path
        self.module = FAULT_MODULE
        self.write_config()

    def rules(self, text):
        tmp = self.rules_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.rules_path)   # the module never reads half a file

    def store_rows(self):
        """The keys table as the store holds it, and SQLite's integrity verdict."""
        db = sqlite3.connect(f"file:{self.dir}/dev.db?mode=ro", uri=True)
        try:
            integrity = db.execute("PRAGMA integrity_check").fetchall()
            cols = [r[1] for r in db.execute("PRAGMA table_info(keys)")]
            rows = db.execute("SELECT * FROM keys ORDER BY 1").fetchall()
        finally:
            db.close()
        return integrity, cols, rows


def healthz(d):
    """/healthz's status, and the reason, which only the control socket gives."""
    st, _, body = d.http("GET", "/healthz")
    check(body in (b"ok\n", b"unhealthy\n"), f"/healthz gives details: {body!r}")
    reason = json.loads(d.s.run("status", "--json").stdout).get("health_reason") or ""
    return st, reason


def jwks_state(d):
    st, h, body = d.http("GET", JWKS)
    check(st == 200, f"GET {JWKS}: {st}")
    return body, h["etag"]


def check_store(s, before):
    integrity, cols, rows = s.store_rows()
    check(integrity == [("ok",)], f"integrity_check: {integrity}")
    check(rows == before[2], f"the keys table changed:\n{before[2]}\n{rows}")
    keys = s.keys("dev/api")
    active = [k for k in keys if k.get("state") == "active"]
    check(len(active) == 1, f"expected one active key: {keys}")
    if "pending" in cols:
        check(all(r[cols.index("pending")] in (0, None) for r in rows), "a pending intent")


def failures(d):
    return d.events("token", result="failed")


def logins(s):
    """C_Login calls the fault module saw since the call log was emptied."""
    with open(s.calls) as f:
        return sum(1 for l in f if l.startswith("C_Login "))


def run_fault(s, rule, want, at_start=False, attempts=3, move_tokens=False):
    """One fault through a fresh keymgrd; see the module docstring for what is checked."""
    before = s.store_rows()
    tokens = os.path.join(s.dir, "tokens")
    if at_start:
        s.rules(rule)
    d = Daemon(s)
    try:
        if not at_start:
            wait_for(lambda: healthz(d)[0] == 200, "healthy before the fault")
        wait_for(lambda: d.http("GET", JWKS)[0] == 200, "the JWKS served")
        body0, etag0 = jwks_state(d)
        oks = len(d.events("token", result="ok"))
        if not at_start:
            if move_tokens:
                os.rename(tokens, tokens + ".away")
            else:
                s.rules(rule)
            p = s.run("tick", expect=None)
            check(p.returncode != 0, f"tick under {rule} succeeded: {p.stdout}")
        st, why = wait_for(lambda: (lambda h: h if h[0] == 503 and "token" in h[1] else None)
                           (healthz(d)), "/healthz 503 naming the token")
        check(want in why, f"/healthz under {rule}: {why!r} (expected {want!r})")
        # Backoff: one log line per attempt, the wait doubling each time.
        d.wait_event("token", result="failed", count=attempts, timeout=60)
        got = [int(e["retry_in"]) for e in failures(d)]
        check(got[:attempts] == [1, 2, 4, 8][:attempts], f"retry_in sequence {got}")
        for e in failures(d):
            check(want in e.get("error", ""), f"log error: {e}")
        # Still the last good document, byte for byte, with its ETag; served all along.
        check(jwks_state(d) == (body0, etag0), "the served JWKS changed during the fault")
        # Not a hot loop: a further 2 s add at most one attempt (the next wait is 8 s).
        time.sleep(2)
        check(len(failures(d)) <= attempts + 1, f"{len(failures(d))} attempts: a hot loop?")
        # The fault clears: keymgrd recovers by itself.
        if move_tokens:
            os.rename(tokens + ".away", tokens)
        s.rules("")
        d.wait_event("token", result="ok", count=oks + 1, timeout=60)
        wait_for(lambda: healthz(d)[0] == 200, "healthy after the fault")
        check(jwks_state(d) == (body0, etag0), "the served JWKS changed after recovery")
        check(d.stop() == 0, "keymgrd exit status")
    finally:
        s.rules("")     # a failed check must not leave the fault to the next case
        if d.proc.poll() is None:
            d.stop()
        if os.path.isdir(tokens + ".away"):
            os.rename(tokens + ".away", tokens)
    check_store(s, before)
    for pin in s.pins.values():
        check(pin not in d.text(), "a PIN appears in keymgrd's log")


def main():
    s = FaultSetup()
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")

        def refused_pin():
            before = s.store_rows()
            d = Daemon(s)
            try:
                wait_for(lambda: healthz(d)[0] == 200, "healthy")
                body0 = jwks_state(d)
                open(s.calls, "w").close()
                s.rules("C_Login:CKR_PIN_INCORRECT")
                s.run("tick", expect=None)
                ev = d.wait_event("token", result="failed")
                check("CKR_PIN_INCORRECT" in ev["error"] and
                      "keymgr reload --retry-pin" in ev.get("retry", ""), f"refused PIN: {ev}")
                # The backoff's checks (1 s, 2 s) and ticks find the PIN refused: no C_Login.
                d.wait_event("token", result="failed", count=3, timeout=60)
                s.run("tick", expect=None)
                check(logins(s) == 1, f"a refused PIN was presented again: {logins(s)}")
                check(healthz(d)[0] == 503 and jwks_state(d) == body0, "503, same JWKS")
                s.rules("")
                s.run("tick", expect=None)
                check(logins(s) == 1 and healthz(d)[0] == 503, "presented again by a tick")
                s.run("reload", "--retry-pin")
                wait_for(lambda: healthz(d)[0] == 200, "healthy after reload --retry-pin")
                check(logins(s) >= 2, "no login after reload --retry-pin")
                check(jwks_state(d) == body0, "JWKS after recovery")
                check(d.stop() == 0, "exit status")
            finally:
                s.rules("")
                if d.proc.poll() is None:
                    d.stop()
            check_store(s, before)

        tests = [
            ("token unavailable at start", lambda: run_fault(
                s, "C_GetTokenInfo:CKR_TOKEN_NOT_PRESENT", "no initialised token",
                at_start=True)),
            ("token gone mid-run (CKR_DEVICE_REMOVED)", lambda: run_fault(
                s, "*:CKR_DEVICE_REMOVED", "CKR_DEVICE_REMOVED", attempts=2)),
            ("token directory moved away mid-run", lambda: run_fault(
                s, "", "token", attempts=2, move_tokens=True)),
            ("CKR_DEVICE_ERROR", lambda: run_fault(
                s, "C_OpenSession:CKR_DEVICE_ERROR", "CKR_DEVICE_ERROR", attempts=2)),
            ("CKR_SESSION_HANDLE_INVALID", lambda: run_fault(
                s, "C_GetSessionInfo:CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_HANDLE_INVALID",
                attempts=2)),
            ("CKR_USER_NOT_LOGGED_IN", lambda: run_fault(
                s, "C_GetSessionInfo:CKR_USER_NOT_LOGGED_IN", "CKR_USER_NOT_LOGGED_IN",
                attempts=2)),
            ("PIN locked", lambda: run_fault(
                s, "C_Login:CKR_PIN_LOCKED", "CKR_PIN_LOCKED", attempts=2)),
            ("refused PIN not retried by itself", refused_pin),
        ]
        return run_tests(tests)
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
