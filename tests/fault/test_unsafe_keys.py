# SPDX-License-Identifier: Apache-2.0
"""Half-made private keys that are not sensitive (issue 16, "found by the crash tests"): a
generation killed inside the token's C_GenerateKeyPair, between the token making the objects
and applying keymgr's template, leaves private keys with the token's defaults: no CKA_ID, no
label, CKA_SENSITIVE false, allowed to sign and decrypt. The fault module's HALFMADE rule
(tests/fault/p11fault.c) makes exactly such a pair through SoftHSM at that point and holds
the call there; the test SIGKILLs keymgr inside it. Then, on the real token (objects read
without keymgr, tests/lifecycle/p11inspect.py):

  - `keymgr policy check` reports the key as a violation (check unsafe-token-key), with the
    repair `keymgr reconcile ENV --remove-unsafe`;
  - `keymgr reconcile` reports it (action unsafe, attention, exit 1) with its handle's
    attributes, abandons the intent, and leaves the key; --dry-run --remove-unsafe says it
    would destroy it and leaves it;
  - `keymgr reconcile --remove-unsafe` destroys it (exit 0): the token holds no unsafe
    private key, keymgr's own keys are untouched, policy check and reconcile are clean;
  - keymgr's own active key, made able to decrypt behind its back (C_SetAttributeValue), is
    reported with the repair `keymgr revoke KID ...`, and never destroyed by reconcile;
  - keymgrd reconciling at start reports such a key and keeps it, unless the configuration
    says daemon.remove_unsafe_keys: true: then it destroys it, before its first pass.

Usage: test_unsafe_keys.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
from daemon_fixture import Daemon, Failure, Setup, check, run_tests, wait_for  # noqa: E402
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER)

P11INSPECT = os.path.join(HERE, "..", "lifecycle", "p11inspect.py")
KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])


class UnsafeSetup(Setup):
    """The daemon fixture's token and store, keymgr.yaml naming the fault module."""

    def __init__(self, **kw):
        super().__init__(KEYMGR, KEYMGRD, keysets=("a",), **kw)
        self.env["KEYMGR_P11FAULT_MODULE"] = self.module
        self.module = FAULT_MODULE
        self.write_config()

    def private_keys(self, *extra):
        """The token's private key objects, read without keymgr (extra: p11inspect options)."""
        p = subprocess.run(["/usr/bin/python3", P11INSPECT, self.env["KEYMGR_P11FAULT_MODULE"],
                            "kd-dev", f"{self.dir}/dev.pin", *extra], env=self.env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"p11inspect: {p.stderr}")
        return [o for o in json.loads(p.stdout)["objects"] if o["class"] == "private"]

    def unsafe_keys(self):
        return [o for o in self.private_keys() if o["sensitive"] is not True or o["decrypt"]]

    def half_made_by_a_killed_generation(self):
        """keymgr rotate, killed inside the token's generation once HALFMADE made the pair."""
        gate = os.path.join(self.dir, "gate")
        log = os.path.join(self.dir, "faults.log")
        env = dict(self.env, KEYMGR_P11FAULT=f"C_GenerateKeyPair:HALFMADE={gate}",
                   KEYMGR_P11FAULT_LOG=log)
        argv, _ = wrapper.wrap([self.keymgr_bin, "-c", self.config, "rotate", "dev/a"])
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: p.poll() is not None or (os.path.exists(log) and
                     "C_GenerateKeyPair HALFMADE call" in open(log).read()),
                     "the generation held with a half-made pair", timeout=wrapper.timeout(60))
            if p.poll() is not None:
                raise Failure(f"keymgr rotate ended before the hold: "
                              f"{p.communicate()[1].decode()}")
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.communicate()
        check(p.returncode == -signal.SIGKILL, f"keymgr rotate exit {p.returncode}")
        check(not os.path.exists(gate), "the gate was never opened")
        unsafe = self.unsafe_keys()
        check(len(unsafe) == 1 and unsafe[0]["id"] == "" and unsafe[0]["label"] == "" and
              unsafe[0]["sensitive"] is False and unsafe[0]["decrypt"] is True,
              f"the half-made private key: {unsafe}")
        check(self.query("SELECT COUNT(*) FROM keys WHERE pending = 1") == 1,
              "the killed rotation left its intent")

    def query(self, sql):
        import sqlite3
        db = sqlite3.connect(f"file:{self.dir}/dev.db?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def reconcile(self, *args, expect):
        return json.loads(self.run("reconcile", "dev", "--json", *args, expect=expect).stdout)

    def policy_unsafe(self, expect):
        doc = json.loads(self.run("policy", "check", "dev", "--json", expect=expect).stdout)
        return [v for v in doc["violations"] if v["check"] == "unsafe-token-key"]


def keymgr_keys(s):
    return sorted(o["id"] for o in s.private_keys() if o["id"])


def test_policy_check_flags_and_reconcile_removes():
    s = UnsafeSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        ours = keymgr_keys(s)
        s.half_made_by_a_killed_generation()

        found = s.policy_unsafe(expect=1)
        check(len(found) == 1 and found[0]["repair"] == "keymgr reconcile dev --remove-unsafe"
              and "CKA_SENSITIVE false" in found[0]["message"] and
              "decrypt" in found[0]["message"], f"policy check: {found}")

        doc = s.reconcile(expect=1)
        unsafe = [f for f in doc["findings"] if f["action"] == "unsafe"]
        check(len(unsafe) == 1, f"reconcile findings: {doc}")
        u = unsafe[0]
        check(u["attention"] and not u["applied"] and u["cka_id"] == "" and
              u["object"]["sensitive"] is False and u["object"]["decrypt"] is True and
              u["object"]["sign"] is True and "--remove-unsafe" in u["detail"],
              f"the unsafe finding: {u}")
        check([f["action"] for f in doc["findings"] if f["action"] != "unsafe"] == ["abandon"],
              f"the killed rotation's intent: {doc}")
        check(len(s.unsafe_keys()) == 1, "reconcile without --remove-unsafe destroyed it")

        doc = s.reconcile("--dry-run", "--remove-unsafe", expect=0)
        u = [f for f in doc["findings"] if f["action"] == "unsafe"][0]
        check(not u["attention"] and not u["applied"] and "would destroy" in u["detail"],
              f"dry run: {u}")
        check(len(s.unsafe_keys()) == 1, "the dry run destroyed it")

        doc = s.reconcile("--remove-unsafe", expect=0)
        u = [f for f in doc["findings"] if f["action"] == "unsafe"]
        check(len(u) == 1 and u[0]["applied"] and u[0]["result"] == "ok" and
              doc["repaired"] == 1, f"--remove-unsafe: {doc}")
        check(s.unsafe_keys() == [], f"still unsafe: {s.unsafe_keys()}")
        check(keymgr_keys(s) == ours, "keymgr's own keys changed")

        check(s.reconcile(expect=0)["findings"] == [], "reconcile after the repair")
        check(s.policy_unsafe(expect=None) == [], "policy check after the repair")
        s.run("sign", "dev/a", "--claims", '{"sub":"x","aud":"api.test","client_id":"c"}',
              "--ttl", "2s")
    finally:
        s.close()


def test_unsafe_key_a_record_holds_is_never_destroyed():
    """keymgr's own active key made able to decrypt behind its back: reported, to be revoked,
    never destroyed by reconcile, --remove-unsafe or not."""
    s = UnsafeSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        kid = [k for k in s.keys("dev/a") if k["state"] == "active"][0]["kid"]
        cka = s.query(f"SELECT lower(hex(cka_id)) FROM keys WHERE kid = '{kid}'")
        s.private_keys("--allow-decrypt-id", cka)
        check([o["decrypt"] for o in s.private_keys() if o["id"] == cka] == [True],
              "CKA_DECRYPT was not set")
        found = s.policy_unsafe(expect=1)
        check(len(found) == 1 and found[0]["kid"] == kid and
              found[0]["repair"] == f"keymgr revoke {kid} --env dev --reason ...",
              f"policy check: {found}")
        for args in ((), ("--remove-unsafe",)):
            doc = s.reconcile(*args, expect=1)
            u = [f for f in doc["findings"] if f["action"] == "unsafe"]
            check(len(u) == 1 and u[0]["kid"] == kid and u[0]["attention"] and
                  not u[0]["applied"] and u[0]["state"] == "active" and
                  "can do more than sign" in u[0]["detail"] and
                  f"keymgr revoke {kid}" in u[0]["detail"], f"reconcile {args}: {doc}")
        check([o["id"] for o in s.private_keys() if o["id"] == cka] == [cka],
              "reconcile destroyed a key a record holds")
        s.run("sign", "dev/a", "--claims", '{"sub":"x","aud":"api.test","client_id":"c"}',
              "--ttl", "2s")
    finally:
        s.close()


def test_keymgrd_removes_only_when_configured():
    s = UnsafeSetup()
    try:
        s.keyset_create("dev/a")
        s.run("rotate", "dev/a")
        s.half_made_by_a_killed_generation()
        d = Daemon(s)
        try:
            ev = d.wait_event("reconcile", action="unsafe")
            check(ev["result"] == "attention" and "CKA_SENSITIVE false" in ev["detail"],
                  f"keymgrd's finding: {ev}")
        finally:
            d.stop()
        check(len(s.unsafe_keys()) == 1, "keymgrd destroyed it without remove_unsafe_keys")

        s.extra_daemon = "remove_unsafe_keys: true"
        s.write_config()
        d = Daemon(s)
        try:
            ev = d.wait_event("reconcile", action="unsafe")
            check(ev["result"] == "repaired", f"keymgrd's repair: {ev}")
            d.wait_event("reconcile", result="done")
        finally:
            d.stop()
        check(s.unsafe_keys() == [], f"still unsafe after keymgrd: {s.unsafe_keys()}")
    finally:
        s.close()


def test_bad_option_value():
    s = UnsafeSetup()
    try:
        s.extra_daemon = "remove_unsafe_keys: yes please"
        s.write_config()
        p = s.run("reconcile", "dev", expect=1)
        check("daemon.remove_unsafe_keys: expected true or false" in p.stderr,
              f"a bad value: {p.stderr}")
        p = s.run("reconcile", "dev", "--remove-unsafe=1", expect=2)
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        ("policy_check_flags_and_reconcile_removes", test_policy_check_flags_and_reconcile_removes),
        ("unsafe_key_a_record_holds_is_never_destroyed",
         test_unsafe_key_a_record_holds_is_never_destroyed),
        ("keymgrd_removes_only_when_configured", test_keymgrd_removes_only_when_configured),
        ("bad_option_value", test_bad_option_value),
    ]))
