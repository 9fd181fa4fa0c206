# SPDX-License-Identifier: Apache-2.0
"""keymgrd's process hardening (issue 8): a running keymgrd has

  - RLIMIT_CORE 0: /proc/PID/limits says "Max core file size 0 0";
  - PR_SET_DUMPABLE 0: a process of the same uid and the same capabilities but without
    CAP_SYS_PTRACE cannot open /proc/PID/mem nor attach with ptrace, while it can do both to
    an ordinary process started the same way (the control, which shows the check has teeth).
    keymgrd, the control and the probe all run under `setpriv --bounding-set=-sys_ptrace`
    (the kernel also refuses access to a process holding capabilities the caller lacks, which
    would hide what dumpability does);
  - no PIN in /proc/PID/cmdline, /proc/PID/environ or its log.
The keymgr command line, logged in to a token, too: a `keymgr rotate` held inside its
C_GenerateKeyPair (the fault module's HOLD rule) has RLIMIT_CORE 0 and is not dumpable.

Usage: test_daemon_hardening.py KEYMGR KEYMGRD P11FAULT-MODULE
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from daemon_fixture import Daemon, Setup, check, run_tests, wait_for  # noqa: E402

KEYMGR, KEYMGRD, FAULT_MODULE = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])

# Run by a process without CAP_SYS_PTRACE: prints "mem:OK|ERRNO ptrace:OK|ERRNO" for a pid.
PROBE = r"""
import ctypes, errno, os, sys
pid = int(sys.argv[1])
try:
    os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))
    mem = "OK"
except OSError as e:
    mem = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    pt = "OK"
else:
    pt = errno.errorcode[ctypes.get_errno()]
print(f"mem:{mem} ptrace:{pt}")
"""


def probe(pid):
    p = subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "/usr/bin/python3", "-c",
                        PROBE, str(pid)], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"probe: {p.stderr}")
    return p.stdout.strip()


def core_limit_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        line = [l for l in f if l.startswith("Max core file size")]
    check(line and line[0].split()[4:6] == ["0", "0"], f"core limit: {line}")


def cli_logged_in(s):
    """A keymgr process held inside the token (logged in, generating): not dumpable."""
    env = dict(s.env, KEYMGR_P11FAULT_MODULE=s.module)
    gate, log = os.path.join(s.dir, "gate"), os.path.join(s.dir, "p11.log")
    text = open(s.config).read().replace(f"module: {s.module}", f"module: {FAULT_MODULE}")
    cfg = os.path.join(s.dir, "fault.yaml")
    with open(cfg, "w") as f:
        f.write(text)
    os.chmod(cfg, 0o600)
    env.update(KEYMGR_P11FAULT=f"C_GenerateKeyPair:HOLD={gate}", KEYMGR_P11FAULT_LOG=log)
    argv = [KEYMGR, "-c", cfg, "rotate", "dev/api", "--force"]
    if shutil.which("setpriv") is not None:
        argv = ["setpriv", "--bounding-set=-sys_ptrace"] + argv
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        wait_for(lambda: os.path.exists(log) and "C_GenerateKeyPair HOLD" in open(log).read(),
                 "keymgr held inside C_GenerateKeyPair")
        core_limit_of(p.pid)
        if shutil.which("setpriv") is not None:
            got = probe(p.pid)
            check(got == "mem:EACCES ptrace:EPERM", f"keymgr logged in: {got}")
    finally:
        open(gate, "w").close()
        out, err = p.communicate(timeout=120)
    check(p.returncode == 0, f"keymgr rotate after the hold: {err}")


def main():
    s = Setup(KEYMGR, KEYMGRD)
    if shutil.which("setpriv") is not None:
        wrapper = os.path.join(s.dir, "keymgrd-noptrace")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec setpriv --bounding-set=-sys_ptrace {KEYMGRD} "$@"\n')
        os.chmod(wrapper, 0o700)
        s.keymgrd_bin = wrapper
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        d = Daemon(s)
        try:
            wait_for(lambda: d.http("GET", "/healthz")[0] == 200, "healthy")
            pid = d.proc.pid

            def core_limit():
                with open(f"/proc/{pid}/limits") as f:
                    line = [l for l in f if l.startswith("Max core file size")]
                check(line and line[0].split()[4:6] == ["0", "0"], f"core limit: {line}")

            def not_dumpable():
                if shutil.which("setpriv") is None:
                    print("skip: no setpriv(1) to drop CAP_SYS_PTRACE", flush=True)
                    return
                control = subprocess.Popen(["setpriv", "--bounding-set=-sys_ptrace", "sleep",
                                            "60"])
                try:
                    got = probe(control.pid)
                    check(got == "mem:OK ptrace:OK", f"the control process: {got}")
                finally:
                    control.kill()
                    control.wait()
                got = probe(pid)
                check(got == "mem:EACCES ptrace:EPERM", f"keymgrd: {got}")
                check(d.proc.poll() is None, "keymgrd died")

            def no_pin_anywhere():
                blobs = []
                for f in ("cmdline", "environ"):
                    with open(f"/proc/{pid}/{f}", "rb") as fh:
                        blobs.append(fh.read())
                blobs.append(d.text().encode())
                for pin in s.pins.values():
                    for b in blobs:
                        check(pin.encode() not in b, "a PIN is visible in /proc or the log")

            rc = run_tests([("keymgr logged in to a token is not dumpable",
                             lambda: cli_logged_in(s)),
                            ("RLIMIT_CORE is 0", core_limit),
                            ("not dumpable: no /proc/PID/mem, no ptrace", not_dumpable),
                            ("no PIN in cmdline, environ or log", no_pin_anywhere)])
        finally:
            d.stop()
        return rc
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
