# SPDX-License-Identifier: Apache-2.0
"""A wrong PIN is presented to the token once (issue 16, "A wrong PIN is retried").

A hardware token counts wrong PINs and locks the PIN, or wipes itself, after a few. Before,
keymgrd made 3 C_Login attempts at start, its signer retried with backoff and every tick from
any peer made one more. Now a refusal is recorded next to the store (STORE.pin-refused, the
PIN file's identity, never the PIN) and no process presents that PIN again until the file
changes or someone asks explicitly (keymgr/core/pin_refusal.c).

The token is SoftHSM behind keymgr-p11fault, whose call log (KEYMGR_P11FAULT_CALLS) shows
every C_Login and what it returned; the wrong PINs are real wrong PINs in the PIN file.
  - the attack: a wrong PIN file, keymgrd started and restarted 3 times, 10 ticks among the
    runs, keymgr commands: exactly one C_Login. keymgrd's log and the commands say the PIN
    was refused earlier and how to retry; the record holds no PIN and is mode 0600;
  - another wrong PIN written to the file: exactly one more C_Login, across ticks and a
    restart;
  - explicit retries: `keymgr env login dev` and `keymgr reload --retry-pin` each present
    the PIN once more; `nobody` may not ask keymgrd for a retry (and causes no login);
  - the right PIN: keymgrd notices it, logs in, signs; the record is gone.

Usage: test_pin_refusal.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "signing"))
from signing_fixture import (CLAIMS, Daemon, SignSetup, call, check, run_tests,  # noqa: E402
                             wait_for)

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
WRONG_1, WRONG_2 = "wrong-pin-1-0815", "wrong-pin-2-4711"


class PinSetup(SignSetup):
    """root signs for dev/api; the token behind the fault module (no fault rule: only its
    call log); the control socket where `nobody` can reach it."""

    def __init__(self):
        super().__init__(KEYMGR, KEYMGRD, policy={"rotation_period": "1h"},
                         extra_daemon="control_group: nogroup\n")
        self.calls = os.path.join(self.dir, "calls.log")
        self.env["KEYMGR_P11FAULT_MODULE"] = self.module
        self.env["KEYMGR_P11FAULT_CALLS"] = self.calls
        self.module = FAULT_MODULE
        self.ctl_dir = tempfile.mkdtemp(prefix="kd-ctl-")
        os.chmod(self.ctl_dir, 0o755)
        self.socket = os.path.join(self.ctl_dir, "ctl.sock")
        self.write_config()
        self.pin_path = os.path.join(self.dir, "dev.pin")
        self.record = os.path.join(self.dir, "dev.db.pin-refused")

    def write_pin(self, pin):
        tmp = self.pin_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, pin.encode() + b"\n")
        os.close(fd)
        os.replace(tmp, self.pin_path)
        self.pins[f"written-{pin}"] = pin      # never in any output (Setup.run checks)

    def logins(self):
        """What each C_Login returned, in order (hex CK_RV)."""
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return [re.search(r"rv=(\S+)", l).group(1) for l in f if l.startswith("C_Login ")]

    def close(self):
        super().close()
        subprocess.run(["rm", "-rf", self.ctl_dir])


INCORRECT = "0xa0"     # CKR_PIN_INCORRECT
OK_RVS = {"0x0", "0x100"}   # CKR_OK, CKR_USER_ALREADY_LOGGED_IN


def refused_daemon(s):
    """A keymgrd that found its token's PIN refused (scheduler and signer both tried)."""
    d = Daemon(s)
    ev = d.wait_event("token", result="failed")
    d.wait_event("signing-token", result="failed")
    check(d.http("GET", "/healthz")[0] == 503, "healthy with a refused PIN")
    return d, ev


def ticks(s, n):
    for _ in range(n):
        p = s.run("tick", expect=None)
        check(p.returncode == 1, f"tick with a refused PIN: {p.returncode} {p.stdout}")


def check_said_refused(text, what):
    check("was refused by the token at" in text and "keymgr env login dev" in text,
          f"{what} does not say the PIN was refused earlier and how to retry: {text!r}")


def test_attack(s):
    s.write_pin(WRONG_1)
    runs = [4, 2, 2, 2]                      # a start and 3 restarts; 10 ticks among them
    for n in runs:
        d, ev = refused_daemon(s)
        try:
            ticks(s, n)
            check(s.logins() == [INCORRECT], f"C_Login calls: {s.logins()}")
            check_said_refused(ev.get("error", ""), "keymgrd's token log line")
            check("keymgr reload --retry-pin" in ev.get("retry", ""), f"retry hint: {ev}")
        finally:
            check(d.stop() == 0, "keymgrd exit status")
        for pin in (WRONG_1, s.pins["dev.pin"]):
            check(pin not in d.text(), "a PIN in keymgrd's log")
    # The command line says the same, and does not log in either.
    p = s.run("rotate", "dev/api", "--now", "--force", expect=None)
    check(p.returncode == 1, f"rotate with a refused PIN: {p.returncode}")
    check_said_refused(p.stderr, "keymgr rotate")
    check(s.pin_path in p.stderr, f"the message does not name the PIN file: {p.stderr}")
    check(s.logins() == [INCORRECT], f"C_Login calls after keymgr rotate: {s.logins()}")
    # The record: the file's identity, no PIN, only for its owner.
    st = os.stat(s.record)
    check(stat.S_IMODE(st.st_mode) == 0o600, f"record mode {oct(st.st_mode)}")
    with open(s.record) as f:
        text = f.read()
    check(WRONG_1 not in text and s.pins["dev.pin"] not in text, "a PIN in the record")
    rec = json.loads(text)
    pst = os.stat(s.pin_path)
    check(rec["source"] == "file:" + s.pin_path and rec["ino"] == pst.st_ino and
          rec["size"] == pst.st_size and rec["rv"] == "CKR_PIN_INCORRECT", f"record {rec}")


def test_changed_file(s):
    s.write_pin(WRONG_2)
    d, _ = refused_daemon(s)
    try:
        ticks(s, 3)
    finally:
        check(d.stop() == 0, "keymgrd exit status")
    d, _ = refused_daemon(s)
    try:
        ticks(s, 2)
    finally:
        check(d.stop() == 0, "keymgrd exit status")
    check(s.logins() == [INCORRECT] * 2, f"C_Login calls: {s.logins()}")


NOBODY_RETRY = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
body = json.dumps({"op": "reload", "retry_pin": True}).encode()
s.sendall(struct.pack(">I", len(body)) + body)
n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
print(s.recv(n, socket.MSG_WAITALL).decode())
"""


def as_nobody():
    pw = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def test_explicit_retry(s):
    p = s.run("env", "login", "dev", expect=None)
    check(p.returncode == 1 and "CKR_PIN_INCORRECT" in p.stderr, f"env login: {p.stderr}")
    check(s.logins() == [INCORRECT] * 3, f"C_Login calls after env login: {s.logins()}")
    d, _ = refused_daemon(s)
    try:
        ticks(s, 2)
        check(s.logins() == [INCORRECT] * 3, f"C_Login calls: {s.logins()}")
        p = subprocess.run(["/usr/bin/python3", "-c", NOBODY_RETRY, s.socket],
                           preexec_fn=as_nobody, capture_output=True, text=True, timeout=60)
        reply = json.loads(p.stdout)
        check(reply.get("ok") is False and reply.get("code") == "denied" and
              "only root and keymgrd's own user" in reply.get("error", ""),
              f"nobody's retry_pin: {reply}")
        failed = len(d.events("token", result="failed"))
        s.run("reload", "--retry-pin")
        d.wait_event("token", result="failed", count=failed + 1)
        check(s.logins() == [INCORRECT] * 4, f"C_Login calls after --retry-pin: {s.logins()}")
        ticks(s, 2)
        check(s.logins() == [INCORRECT] * 4, f"C_Login calls: {s.logins()}")
    finally:
        check(d.stop() == 0, "keymgrd exit status")


def test_right_pin(s):
    d, _ = refused_daemon(s)
    try:
        s.write_pin(s.pins["dev.pin"])
        s.run("tick")
        wait_for(lambda: d.http("GET", "/healthz")[0] == 200, "healthy with the right PIN")
        reply = wait_for(lambda: (lambda r: r if r.get("ok") else None)(
            call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS, "ttl": "2s"})),
            "keymgrd signing again")
        check(reply.get("jwt"), f"sign: {reply}")
        got = s.logins()
        check(got[:4] == [INCORRECT] * 4 and got[4:] and set(got[4:]) <= OK_RVS,
              f"C_Login calls: {got}")
        check(not os.path.exists(s.record), "the record stayed after a good login")
    finally:
        check(d.stop() == 0, "keymgrd exit status")
    p = s.run("env", "login", "dev")
    check("logged in" in p.stdout, f"env login: {p.stdout}")


def main():
    s = PinSetup()
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        open(s.calls, "w").close()
        return run_tests([
            ("a refused PIN: one C_Login across a start, 3 restarts, 10 ticks, the CLI",
             lambda: test_attack(s)),
            ("a changed PIN file is presented once", lambda: test_changed_file(s)),
            ("explicit retries: env login, reload --retry-pin (not by nobody)",
             lambda: test_explicit_retry(s)),
            ("the right PIN: keymgrd logs in and signs again", lambda: test_right_pin(s)),
        ])
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
