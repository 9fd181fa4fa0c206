# SPDX-License-Identifier: Apache-2.0
"""The probe signer (keymgr/claims/claims_probe.h, km_claims_sign_probe) signs deliberately
wrong tokens with real keys; nothing but keymgr probe may reach it. Checked on the built
programs, where a call cannot hide behind a header:

  - keymgrd (whose control socket signs for issuers) and keymgrd-listener hold no copy of
    it, nor any of keymgr/probe/;
  - in keymgr, every call to it is made from keymgr/probe/'s code: by the symbols its
    static library defines, and, with debug information, by the source file of each call
    site (inlined frames included); and there is at least one such call, so this test
    cannot pass on a program that lost it.

Usage: /usr/bin/python3 test_probe_signer.py KEYMGR KEYMGRD LISTENER LIBKM_PROBE.a
"""
import re
import subprocess
import sys

SIGNER = "km_claims_sign_probe"


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def symbols(path, defined_only=False):
    out = run("nm", *(["--defined-only"] if defined_only else []), path)
    return {line.split()[-1] for line in out.splitlines() if line.strip() and
            not line.endswith(":")}


def callers(exe):
    """(address, function) of every call to the signer in exe."""
    found, current = [], None
    for line in run("objdump", "-d", "--no-show-raw-insn", exe).splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(call|jmp)\w*\s+[0-9a-f]+ <" + SIGNER + r">", line)
        if m:
            found.append((m.group(1), current))
    return found


def main(keymgr, keymgrd, listener, probe_lib):
    failed = 0

    def check(ok, what):
        nonlocal failed
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        failed += not ok

    for prog in (keymgrd, listener):
        names = symbols(prog)
        check(SIGNER not in names, f"{prog}: no {SIGNER}")
        probe_names = sorted(n for n in names if n.startswith("km_probe_"))
        check(probe_names == [], f"{prog}: nothing of keymgr/probe/ {probe_names}")
    probe_functions = symbols(probe_lib, defined_only=True)
    calls = callers(keymgr)
    check(len(calls) > 0, f"{keymgr}: {SIGNER} is called ({len(calls)} call sites)")
    for addr, fn in calls:
        check(fn in probe_functions, f"{keymgr}: the call at {addr} is in {fn}, a function "
              "of keymgr/probe/")
        lines = run("addr2line", "-i", "-e", keymgr, addr).splitlines()
        files = [ln.split(" (")[0].rsplit(":", 1)[0] for ln in lines
                 if ln.strip() and not ln.startswith("??")]
        if files:
            check(all("/keymgr/probe/" in f for f in files),
                  f"{keymgr}: the call at {addr} comes from {files}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
