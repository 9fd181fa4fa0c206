# SPDX-License-Identifier: Apache-2.0
"""keymgrd reconciles every environment at start, before its first pass (issue 8;
docs/reconcile.md). Needs a -Dtest_hooks=true build: keymgr is killed inside a rotation with
KEYMGR_CRASH_AT (keymgr/common/faultpoint.h), as the crash matrix does.

  - killed after the token generated the pair (generate.after_token): a pending intent whose
    key exists in the token; keymgrd ADOPTS it at start;
  - killed right after the intent (generate.after_intent): a pending intent with nothing in
    the token; keymgrd ABANDONS it at start;
  each finding is one "event=reconcile" log line (env, action, keyset, cka_id, result), then
  a summary line, all before the first pass; afterwards no intent is pending, `keymgr
  reconcile` has nothing left to do, and keymgrd brings both key sets to one active key.
  - the token unavailable at start (keymgr-p11fault): reconciliation is logged as failed and
    runs again, successfully, once the token is back.

Usage: test_daemon_reconcile.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])


class CrashSetup(Setup):
    """The fixture with keymgr.yaml naming the fault module (no rule unless a test sets one)."""

    def __init__(self):
        super().__init__(KEYMGR, KEYMGRD, keysets=("a", "b"))
        self.rules_path = os.path.join(self.dir, "fault.rules")
        self.rules("")
        self.env["KEYMGR_P11FAULT_MODULE"] = self.module
        self.env["KEYMGR_P11FAULT_FILE"] = self.rules_path
        self.module = FAULT_MODULE
        self.write_config()

    def rules(self, text):
        tmp = self.rules_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.rules_path)

    def crash_rotate(self, ref, point):
        saved = dict(self.env)
        self.env["KEYMGR_CRASH_AT"] = point
        try:
            p = self.run("rotate", ref, expect=None)
        finally:
            self.env = saved
        check(p.returncode in (137, -9), f"rotate with {point}: exit {p.returncode} "
              f"{p.stderr.strip()}")

    def query(self, sql, *args):
        db = sqlite3.connect(f"file:{self.dir}/dev.db?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def pending(self):
        return self.query("SELECT COUNT(*) FROM keys WHERE pending = 1")[0][0]

    def intents(self):
        """{keyset: lowercase hex CKA_ID} of the pending intents."""
        return {ks: cka.lower() for ks, cka in self.query(
            "SELECT keysets.name, hex(keys.cka_id) FROM keys JOIN keysets ON "
            "keys.keyset_id = keysets.id WHERE keys.pending = 1")}

    def row(self, cka_id):
        """(pending, state, kid) of the row with this CKA_ID."""
        return self.query("SELECT pending, state, kid FROM keys WHERE lower(hex(cka_id)) = ?",
                          cka_id)[0]


def leave_two_intents(s):
    s.keyset_create("dev/a")
    s.keyset_create("dev/b")
    s.crash_rotate("dev/a", "generate.after_token")
    s.crash_rotate("dev/b", "generate.after_intent")
    check(s.pending() == 2, f"{s.pending()} pending intents after the crashes")
    return s.intents()


def check_repaired(s, d, intents):
    adopt = d.wait_event("reconcile", action="adopt", keyset="a")
    abandon = d.wait_event("reconcile", action="abandon", keyset="b")
    for ev in (adopt, abandon):
        check(ev.get("result") == "repaired" and ev.get("env") == "dev", f"line: {ev}")
    check(adopt["cka_id"] == intents["a"] and abandon["cka_id"] == intents["b"],
          f"CKA_IDs {adopt['cka_id']} {abandon['cka_id']} (intents {intents})")
    summary = d.wait_event("reconcile", env="dev", result="done")
    check(summary.get("repaired") == "2" and summary.get("failed") == "0", f"summary {summary}")
    # Those two rows are settled (later intents may be keymgrd's own generations at work).
    pa, _, kid_a = s.row(intents["a"])
    pb, state_b, kid_b = s.row(intents["b"])
    check(pa == 0 and kid_a, f"adopted row: pending={pa} kid={kid_a}")
    check(pb == 0 and state_b == "revoked" and not kid_b, f"abandoned row: {pb} {state_b}")
    for ks in ("a", "b"):
        wait_for(lambda: [k for k in s.keys(f"dev/{ks}") if k.get("state") == "active"],
                 f"an active key in dev/{ks}", timeout=90)


def nothing_left(s):
    """After keymgrd stopped (never concurrently: it may be generating a key right now)."""
    out = s.run("reconcile", "dev", "--dry-run").stdout
    check("nothing to repair" in out, f"reconcile after keymgrd's: {out}")


def test_at_start():
    s = CrashSetup()
    try:
        intents = leave_two_intents(s)
        d = Daemon(s)
        try:
            check_repaired(s, d, intents)
            lines = d.lines()
            first_pass = min((i for i, l in enumerate(lines)
                              if l.get("event") in ("action", "action-start", "keyset-failed")),
                             default=len(lines))
            last_recon = max(i for i, l in enumerate(lines) if l.get("event") == "reconcile")
            check(last_recon < first_pass, "reconcile lines after the first pass began")
            check(d.stop() == 0, "exit status")
            nothing_left(s)
        finally:
            if d.proc.poll() is None:
                d.stop()
    finally:
        s.close()


def test_token_away_at_start():
    s = CrashSetup()
    try:
        intents = leave_two_intents(s)
        s.rules("C_GetTokenInfo:CKR_TOKEN_NOT_PRESENT")
        d = Daemon(s)
        try:
            ev = d.wait_event("reconcile", env="dev", result="failed")
            check("retry" in ev, f"failed reconcile line: {ev}")
            check(s.pending() == 2, "intents touched while the token was away")
            s.rules("")
            check_repaired(s, d, intents)
            check(d.stop() == 0, "exit status")
            nothing_left(s)
        finally:
            if d.proc.poll() is None:
                d.stop()
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([("adopt and abandon at start, before the first pass", test_at_start),
                        ("token away at start: reconciled once it is back",
                         test_token_away_at_start)]))
