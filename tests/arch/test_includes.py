# SPDX-License-Identifier: Apache-2.0
"""The layering check (scripts/check-includes, docs/architecture.md):

- the tree as it is keeps the layering (exit 0);
- a copy of the tree with one bad #include each time is refused, naming the file, the line and
  the rule: a layer including the one above it (core -> daemon), a folder including another
  folder's private header (cli -> pkcs11/internal.h), a folder including one beside it that it
  does not sit on (http -> store), a library folder including a program's (core -> cli), and
  the probe signer (keymgr/claims/claims_probe.h) included by anything but keymgr/probe: the
  signing path of `keymgr sign` (cli) and of the control socket (daemon), or core; the report
  layer (keymgr/report) sits on core and audit, is included by the command line only, and
  keeps its timeline_int.h private.

Usage: /usr/bin/python3 test_includes.py SOURCE-ROOT
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1])
CHECK = os.path.join(ROOT, "scripts", "check-includes")
FOLDERS = ("keymgr", "pkcs11", "policy")


def run(root):
    return subprocess.run(["/usr/bin/python3", CHECK, root], capture_output=True, text=True)


def main():
    p = run(ROOT)
    if p.returncode != 0:
        print(f"FAIL the tree breaks its layering:\n{p.stdout}{p.stderr}")
        return 1
    print(f"ok   {p.stdout.strip()}")
    cases = [
        ("keymgr/core/env.c", '#include "keymgr/daemon/state.h"\n',
         "keymgr/core may not include keymgr/daemon"),
        ("keymgr/cli/main.c", '#include "pkcs11/internal.h"\n', "is private to pkcs11"),
        ("keymgr/http/http_util.c", '#include "keymgr/store/store.h"\n',
         "keymgr/http may not include keymgr/store"),
        ("keymgr/core/apply.c", '#include "keymgr/cli/cli.h"\n',
         "keymgr/core may not include keymgr/cli"),
        ("policy/planner.c", '#include "keymgr/core/env.h"\n',
         "policy may not include keymgr/core"),
        ("keymgr/cli/cmd_publish.c", '#include "keymgr/claims/claims_probe.h"\n',
         "is for keymgr/probe only"),
        ("keymgr/daemon/signer.c", '#include "keymgr/claims/claims_probe.h"\n',
         "is for keymgr/probe only"),
        ("keymgr/probe/probe.c", '#include "keymgr/daemon/state.h"\n',
         "keymgr/probe may not include keymgr/daemon"),
        ("keymgr/daemon/main.c", '#include "keymgr/probe/probe.h"\n',
         "keymgr/daemon may not include keymgr/probe"),
        # the report layer (issue 19): drawn on core and audit; only the command line draws
        ("keymgr/core/env.c", '#include "keymgr/report/report.h"\n',
         "keymgr/core may not include keymgr/report"),
        ("keymgr/daemon/main.c", '#include "keymgr/report/timeline.h"\n',
         "keymgr/daemon may not include keymgr/report"),
        ("keymgr/report/page.c", '#include "keymgr/cli/cli.h"\n',
         "keymgr/report may not include keymgr/cli"),
        ("keymgr/cli/main.c", '#include "keymgr/report/timeline_int.h"\n',
         "is private to keymgr/report"),
    ]
    failed = 0
    for rel, line, words in cases:
        tmp = tempfile.mkdtemp(prefix="keymgr-arch-")
        try:
            for f in FOLDERS:
                shutil.copytree(os.path.join(ROOT, f), os.path.join(tmp, f))
            path = os.path.join(tmp, rel)
            with open(path) as f:
                text = f.read()
            # after the file's first include, so the line number is known
            first = text.index("#include")
            n = text[:first].count("\n") + 1
            with open(path, "w") as f:
                f.write(text[:first] + line + text[first:])
            p = run(tmp)
            ok = p.returncode == 1 and f"{rel}:{n}: " in p.stdout and words in p.stdout
            print(f"{'ok  ' if ok else 'FAIL'} {rel}: {line.strip()} -> "
                  f"{p.stdout.strip() or p.stderr.strip()}")
            failed += not ok
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
