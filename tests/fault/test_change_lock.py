# SPDX-License-Identifier: Apache-2.0
"""The change lock of an environment (keymgr/store/change_lock.h, docs/reconcile.md): a
flock(2) on STORE.lock that reconcile, rotate, apply, revoke, generate and destroy hold from
their decision to their last step. Real keymgr processes, a real SoftHSM token behind the
fault-injecting module (tests/fault/p11fault.c), which leaves half-done changes by killing
keymgr inside token calls.

  - two reconciles started together on a token with four half-done changes (two intents
    without key pair, one with its pair, one destroy cut between the two objects): every
    change is repaired exactly once, by one of them; neither reports a failed repair; the
    store's history holds one abandon / confirm / destroyed per key;
  - a reconcile (and a rotate) while another process holds the lock and never lets go:
    refused with exit 1 and a message naming the environment and the holder's pid and
    operation; store and token unchanged;
  - a reconcile while another process holds the lock for a moment: it waits, then repairs;
  - a kill -9 inside a rotation leaves its record in the lock file but no lock: the next
    reconcile neither waits nor complains;
  - the lock file is mode 0600;
  - keymgrd tells a CLI change from its own: a `keymgr rotate` holds the lock (held inside
    its token generation by the fault module's HOLD rule) while a pass of keymgrd waits for
    it; once the rotation is done and the pass has run, keymgrd has logged the rotation as a
    change from outside (event=store-change) and serves the new key.

Usage: test_change_lock.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from daemon_fixture import Daemon, Failure, Setup, check, run_tests, wait_for  # noqa: E402
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER)

P11INSPECT = os.path.join(HERE, "..", "lifecycle", "p11inspect.py")

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
KEYSETS = ("a", "b", "c", "d")


class LockSetup(Setup):
    """The daemon fixture's tokens and store, keymgr.yaml naming the fault module (no fault
    unless a call sets KEYMGR_P11FAULT)."""

    def __init__(self, **kw):
        super().__init__(KEYMGR, KEYMGRD, keysets=KEYSETS, **kw)
        self.env["KEYMGR_P11FAULT_MODULE"] = self.module
        self.module = FAULT_MODULE
        self.write_config()
        self.lock_path = os.path.join(self.dir, "dev.db.lock")

    def killed(self, rule, *args):
        """Runs keymgr ARGS with a KILL rule; it must die by SIGKILL inside the token call."""
        saved = dict(self.env)
        self.env["KEYMGR_P11FAULT"] = rule
        try:
            p = self.run(*args, expect=None)
        finally:
            self.env = saved
        check(p.returncode in (137, -9), f"keymgr {' '.join(args)} with {rule}: exit "
              f"{p.returncode} {p.stderr.strip()}")

    def query(self, sql, *params):
        db = sqlite3.connect(f"file:{self.dir}/dev.db?mode=ro", uri=True)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def state(self):
        """What a refused operation must not change: every key row and every key event."""
        return (self.query("SELECT * FROM keys ORDER BY id"),
                self.query("SELECT * FROM key_events ORDER BY id"))

    def token_objects(self):
        """The token's objects (class, CKA_ID, label), read without keymgr
        (tests/lifecycle/p11inspect.py, through the real module)."""
        p = subprocess.run(["/usr/bin/python3", P11INSPECT, self.env["KEYMGR_P11FAULT_MODULE"],
                            "kd-dev", f"{self.dir}/dev.pin"], env=self.env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"p11inspect: {p.stderr}")
        return sorted((o["class"], o["id"], o["label"]) for o in json.loads(p.stdout)["objects"])

    def popen(self, *args):
        """keymgr -c CONFIG ARGS started in the background (behind KEYMGR_TEST_WRAPPER)."""
        argv, _ = wrapper.wrap([self.keymgr_bin, "-c", self.config, *args])
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)



class Holder:
    """This process holding the lock, as another keymgr would: flock + its record."""

    def __init__(self, path, op="rotate"):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid={os.getpid()} prog=keymgr op={op}\n".encode(), 0)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def waiting_on(proc, path):
    """proc has the lock file open: it is in its lock wait (it opens the file only there)."""
    try:
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == path:
                    return True
            except OSError:
                pass
    except FileNotFoundError:
        pass
    return False


def half_done_changes(s):
    """Four half-done changes on dev; returns {kind: lowercase hex CKA_ID}."""
    for ks in KEYSETS:
        s.keyset_create(f"dev/{ks}")
        s.run("rotate", f"dev/{ks}")
    # Killed before the token acts (intent, no pair): abandon. Twice, two key sets.
    s.killed("C_GenerateKeyPair:KILL", "rotate", "dev/a")
    s.killed("C_GenerateKeyPair:KILL", "rotate", "dev/b")
    # Killed right after the token made the pair (its public key is read next): adopt.
    s.killed("C_GetAttributeValue:KILL", "rotate", "dev/c")
    # A removed key whose private object is destroyed, then the process dies: destroyed.
    old = s.keys("dev/d")[0]["kid"]
    s.run("rotate", "dev/d", "--now", "--force")
    s.run("key", "remove", old, "--env", "dev", "--force")
    s.killed("C_DestroyObject:KILL:after=1", "destroy", old, "--env", "dev")
    pend = {ks: cka.lower() for ks, cka in s.query(
        "SELECT keysets.name, hex(keys.cka_id) FROM keys JOIN keysets ON "
        "keys.keyset_id = keysets.id WHERE keys.pending = 1")}
    check(set(pend) == {"a", "b", "c"}, f"pending intents: {pend}")
    (dcka,), = s.query("SELECT lower(hex(cka_id)) FROM keys WHERE kid = ?", old)
    check(s.query("SELECT state FROM keys WHERE kid = ?", old)[0][0] == "removed",
          "the cut destroy left the row removed")
    return {"abandon": {pend["a"], pend["b"]}, "adopt": {pend["c"]}, "destroyed": {dcka}}


def findings(p):
    check(p.returncode == 0, f"reconcile exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def test_two_reconciles_repair_each_change_once():
    s = LockSetup()
    try:
        want = half_done_changes(s)
        # Both start while the lock is held, so that both really contend for it. (Should the
        # second one be slow to start, the first is not kept waiting near its 10 s limit:
        # the results below must hold however the two interleave.)
        h = Holder(s.lock_path)
        procs = [s.popen("reconcile", "dev", "--json") for _ in range(2)]
        wait_for(lambda: any(waiting_on(p, s.lock_path) for p in procs),
                 "a reconcile waiting for the lock", timeout=wrapper.timeout(60), step=0.02)
        end = time.monotonic() + 5
        while time.monotonic() < end and not all(waiting_on(p, s.lock_path) for p in procs):
            time.sleep(0.02)
        if not all(waiting_on(p, s.lock_path) for p in procs):
            print("  (the second reconcile reached the lock only after the release)")
        check(all(p.poll() is None for p in procs), "a reconcile did not wait")
        h.release()
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=wrapper.timeout(120))
            outs.append(findings(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
        applied = {}
        for doc in outs:
            check(doc["failed"] == 0 and doc["environments_failed"] == 0,
                  f"a reconcile failed a repair: {doc}")
            for f in doc["findings"]:
                check(f["result"] == "ok", f"finding failed: {f}")
                if f["applied"]:
                    applied.setdefault((f["action"], f["cka_id"]), 0)
                    applied[(f["action"], f["cka_id"])] += 1
        expected = {(kind, cka): 1 for kind, ckas in want.items() for cka in ckas}
        check(applied == expected, f"repairs applied {applied}, expected {expected}")
        check(sorted(d["repaired"] for d in outs) == [0, 4],
              f"repaired counts {[d['repaired'] for d in outs]}: one did all, one nothing")
        # The store's history: one abandon / confirm / destroyed each, nothing pending.
        check(s.query("SELECT COUNT(*) FROM keys WHERE pending = 1")[0][0] == 0,
              "intents still pending")
        for kind, ckas in want.items():
            for cka in ckas:
                ev = s.query("SELECT what, to_state FROM key_events JOIN keys ON keys.id = "
                             "key_events.key_id WHERE lower(hex(keys.cka_id)) = ?", cka)
                n = {"abandon": sum(1 for w, _ in ev if w == "abandon"),
                     "adopt": sum(1 for w, _ in ev if w == "confirm"),
                     "destroyed": sum(1 for w, t in ev if w == "transition" and
                                      t == "destroyed")}[kind]
                check(n == 1, f"{kind} {cka}: {n} events in the history: {ev}")
        p = s.run("reconcile", "dev")
        check("nothing to repair" in p.stdout, f"a third reconcile: {p.stdout}")
    finally:
        s.close()


def test_held_lock_refuses_cleanly():
    s = LockSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        s.killed("C_GenerateKeyPair:KILL", "rotate", "dev/a")  # a pending intent
        before, token_before = s.state(), s.token_objects()
        h = Holder(s.lock_path, op="rotate")
        try:
            for args in (["reconcile", "dev"], ["reconcile", "dev", "--dry-run"],
                         ["rotate", "dev/a"], ["apply", "dev"]):
                p = s.run(*args, expect=1)
                want = (f"environment 'dev' is being changed by another keymgr process "
                        f"(pid {os.getpid()}, keymgr rotate)")
                check(p.stderr.startswith("keymgr: ") and want in p.stderr
                      and "nothing was changed" in p.stderr,
                      f"keymgr {' '.join(args)} under a held lock: {p.stderr!r}")
                check(p.stdout == "", f"stdout: {p.stdout!r}")
                check(s.state() == before, f"keymgr {' '.join(args)} changed the store")
                check(s.token_objects() == token_before, f"keymgr {' '.join(args)} changed "
                      "the token")
            # --json says which key set could not be changed, and why (and stderr too).
            p = s.run("apply", "dev", "--json", expect=1)
            doc = json.loads(p.stdout)
            check(doc["applied"] == 0 and doc["actions"] == [] and len(doc["errors"]) == 1,
                  f"apply --json under a held lock: {doc}")
            e = doc["errors"][0]
            check(e["env"] == "dev" and e["keyset"] == "a" and want in e["error"],
                  f"apply --json error: {e}")
            check(want in p.stderr, f"apply --json stderr: {p.stderr!r}")
            check(s.state() == before, "keymgr apply --json changed the store")
            # Reading is never locked out.
            s.run("key", "list", "dev/a", "--json")
            s.run("jwks", "dev")
        finally:
            h.release()
        p = s.run("reconcile", "dev")
        check("repaired abandon" in p.stdout, f"after the release: {p.stdout}")
    finally:
        s.close()


def test_reconcile_waits_for_a_short_hold():
    s = LockSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        s.killed("C_GenerateKeyPair:KILL", "rotate", "dev/a")
        h = Holder(s.lock_path, op="apply")
        p = s.popen("reconcile", "dev")
        wait_for(lambda: waiting_on(p, s.lock_path), "reconcile waiting for the lock",
                 timeout=wrapper.timeout(60), step=0.02)
        check(p.poll() is None, "reconcile did not wait")
        h.release()
        out, err = p.communicate(timeout=wrapper.timeout(120))
        check(p.returncode == 0 and "repaired abandon" in out,
              f"reconcile after the wait: exit {p.returncode} {out} {err}")
    finally:
        s.close()


def test_killed_holder_leaves_no_lock():
    s = LockSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        s.killed("C_GetAttributeValue:KILL", "rotate", "dev/a")
        with open(s.lock_path) as f:
            rec = f.read()
        check(" op=rotate" in rec, f"the killed rotation's record: {rec!r}")
        check(os.stat(s.lock_path).st_mode & 0o777 == 0o600,
              f"lock file mode {oct(os.stat(s.lock_path).st_mode & 0o777)}")
        # The record names a dead process; the kernel dropped its lock: no wait, no refusal.
        p = s.run("reconcile", "dev")
        check("repaired adopt" in p.stdout, f"reconcile after the kill: {p.stdout}")
        with open(s.lock_path) as f:
            check(f.read() == "", "a finished holder leaves its record behind")
    finally:
        s.close()


def test_daemon_tells_a_cli_change_from_its_own():
    # No scheduled rotation: the only changes are the CLI's rotation and what the tick does.
    s = LockSetup(policy={"rotation_period": "10m"})
    d = None
    gate, faults = os.path.join(s.dir, "gate"), os.path.join(s.dir, "faults.log")
    procs = []
    try:
        s.keyset_create("dev/a")
        d = Daemon(s, verbose=False)
        d.wait_event("action", action="activate", keyset="a")
        saved = dict(s.env)
        s.env.update(KEYMGR_P11FAULT=f"C_GenerateKeyPair:HOLD={gate}",
                     KEYMGR_P11FAULT_LOG=faults)
        try:
            rot = s.popen("rotate", "dev/a", "--json")
            procs.append(rot)
        finally:
            s.env = saved

        def held():
            if rot.poll() is not None:
                raise Failure(f"rotate ended early: {rot.communicate()}")
            return os.path.exists(faults) and "C_GenerateKeyPair HOLD" in open(faults).read()
        # The rotation holds the change lock, its intent recorded, inside the generation.
        wait_for(held, "the rotation held inside C_GenerateKeyPair", timeout=wrapper.timeout(60),
                 step=0.02)
        with open(s.lock_path) as f:
            check(" op=rotate" in f.read(), "the rotation does not hold the lock")
        # A pass of keymgrd (keymgr tick) reads the store, then waits for the lock.
        tick = s.popen("tick")
        procs.append(tick)
        d.wait_event("change-lock", keyset="a", result="waiting", timeout=wrapper.timeout(60))
        check(tick.poll() is None, "the tick did not wait for the rotation")
        open(gate, "w").close()
        out, err = rot.communicate(timeout=wrapper.timeout(120))
        check(rot.returncode == 0, f"rotate: exit {rot.returncode} {err}")
        new = json.loads(out)["kid"]
        out, err = tick.communicate(timeout=wrapper.timeout(120))
        check(tick.returncode == 0 and "planned" in out, f"tick: exit {tick.returncode} {out} {err}")
        check(d.events("store-change", env="dev", keyset="a"),
              "keymgrd took the rotation its pass waited for for its own change")
        check(new in d.kids("/dev/.well-known/jwks.json"), "the rotated key is not served")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        open(gate, "a").close()   # a failed check must not leave the rotation held
        for p in (p for p in procs if p.returncode is None):
            try:
                p.communicate(timeout=wrapper.timeout(120))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        if d is not None:
            d.stop()
        s.close()


def test_change_after_a_wait_records_when_it_happened():
    """A rotate that waited for the lock records its times from when it got it, not from when
    it started: a publication recorded early would let the planner activate the key before
    verifiers could have fetched it."""
    s = LockSetup()
    try:
        s.keyset_create("dev/a")
        h = Holder(s.lock_path, op="apply")
        p = s.popen("rotate", "dev/a", "--json")
        wait_for(lambda: waiting_on(p, s.lock_path), "rotate waiting for the lock",
                 timeout=wrapper.timeout(60), step=0.02)
        started = int(time.time())
        while int(time.time()) < started + 3:   # hold across whole seconds
            check(p.poll() is None, "rotate did not wait")
            time.sleep(0.1)
        released = int(time.time())
        h.release()
        out, err = p.communicate(timeout=wrapper.timeout(120))
        check(p.returncode == 0, f"rotate after the wait: exit {p.returncode} {err}")
        kid = json.loads(out)["kid"]
        rows = s.query("SELECT k.generated_at, k.published_at FROM keys k WHERE k.kid = ?", kid)
        events = s.query("SELECT e.at FROM key_events e JOIN keys k ON k.id = e.key_id "
                         "WHERE k.kid = ?", kid)
        check(len(rows) == 1 and events, f"new key {kid}: {rows} {events}")
        times = [t for t in rows[0] if t is not None] + [e[0] for e in events]
        check(min(times) >= released, f"times recorded before the lock was released "
              f"({released}): {rows} {events}")
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        ("two_reconciles_repair_each_change_once", test_two_reconciles_repair_each_change_once),
        ("held_lock_refuses_cleanly", test_held_lock_refuses_cleanly),
        ("reconcile_waits_for_a_short_hold", test_reconcile_waits_for_a_short_hold),
        ("killed_holder_leaves_no_lock", test_killed_holder_leaves_no_lock),
        ("daemon_tells_a_cli_change_from_its_own", test_daemon_tells_a_cli_change_from_its_own),
        ("change_after_a_wait_records_when_it_happened",
         test_change_after_a_wait_records_when_it_happened),
    ]))
