# SPDX-License-Identifier: Apache-2.0
"""http.static_hook: the command keymgrd runs after each write of http.static_dir
(docs/static-hosting.md, "The hook"), here a real shell script.

runs:       after keymgrd writes the tree it runs the hook once with every changed path as an
            argument (relative to the directory, manifest.json last), in the directory, with
            KEYMGR_ENV, KEYMGR_STATIC_DIR and KEYMGR_SERIAL; /metrics counts the run.
retried:    a hook that exits non-zero is logged (static-hook result=failed, its status),
            counted (keymgr_static_hook_runs_total{result="failed"},
            keymgr_static_hook_failures) and run again after the backoff with the same paths;
            once it succeeds the failures gauge is back to 0.
timeout:    a hook that outlives http.static_hook_timeout is killed (its process is gone),
            logged as timed out, counted (keymgr_static_hook_timeouts_total), and retried;
            a reload without the hook drops it at once, and later writes run nothing.
bad:        a relative program, an empty list, a hook without static_dir, a timeout of 0:
            refused at load, naming the key.

Usage: /usr/bin/python3 test_static_hook.py KEYMGR KEYMGRD
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "signing"))
from signing_fixture import Daemon, Failure, SignSetup, check, run_tests, wait_for  # noqa: E402

keymgr, keymgrd = sys.argv[1:3]

SCRIPT = """#!/bin/sh
mode=$(cat {tmp}/mode)
echo "$mode|$(pwd)|$KEYMGR_ENV|$KEYMGR_STATIC_DIR|$KEYMGR_SERIAL|$*" >> {tmp}/runs
case "$mode" in
fail) exit 7 ;;
hang) echo $$ >> {tmp}/hang.pid; exec sleep 1000 ;;
esac
exit 0
"""


class HookSetup(SignSetup):
    """One key set; static_dir and the hook lines given in http:."""

    def __init__(self, hook_lines, static_dir=None):
        self.hook_lines = hook_lines
        self.static_dir = static_dir
        super().__init__(keymgr, keymgrd, keysets=("api",), policy={"rotation_period": "10m"})

    def config_text(self, policy=None, keyset_policy=None, extra_daemon=None, signers=None):
        out = []
        for line in super().config_text(policy, keyset_policy, extra_daemon,
                                        signers).splitlines():
            out.append(line)
            if line == "    http:":
                if self.static_dir:
                    out.append(f"      static_dir: {self.static_dir}")
                out += [f"      {h}" for h in self.hook_lines]
        return "\n".join(out) + "\n"


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(r"^" + re.escape(name) + r"\{" + re.escape(want) + r"\} (\d+)$", text, re.M)
    check(m is not None, f"{name}{{{want}}} not in /metrics")
    return int(m.group(1))


def runs(tmp):
    try:
        with open(os.path.join(tmp, "runs")) as f:
            return [l.split("|") for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def set_mode(tmp, mode):
    with open(os.path.join(tmp, "mode"), "w") as f:
        f.write(mode)


def test_runs_retried_timeout():
    tmp = tempfile.mkdtemp(prefix="kd-hook-")
    os.chmod(tmp, 0o755)
    tree = os.path.join(tmp, "static")
    os.mkdir(tree, 0o755)
    script = os.path.join(tmp, "hook.sh")
    with open(script, "w") as f:
        f.write(SCRIPT.format(tmp=tmp))
    os.chmod(script, 0o755)
    set_mode(tmp, "ok")
    s = HookSetup([f"static_hook: [ {script}, --bucket, 's3://b/keys' ]",
                   "static_hook_timeout: 2"], tree)
    d = None
    try:
        s.keyset_create("dev/api")
        s.run("rotate", "dev/api")
        d = Daemon(s, verbose=False)
        d.wait_event("static-hook", result="ok")
        r = runs(tmp)
        check(len(r) == 1, f"runs: {r}")
        mode, cwd, env, sdir, serial, args = r[0]
        check(cwd == tree and env == "dev" and sdir == tree, f"hook context: {r[0]}")
        args = args.split(" ")
        check(args[:2] == ["--bucket", "s3://b/keys"], f"configured words: {args}")
        files = sorted(os.path.relpath(os.path.join(dp, f), tree)
                       for dp, _, fs in os.walk(tree) for f in fs)
        check(sorted(args[2:]) == files and args[-1] == "manifest.json",
              f"changed paths {args[2:]} vs the tree {files}")
        status = s.run("status", "--json").stdout
        check(f'"serial":{serial}' in status.replace(" ", ""), f"KEYMGR_SERIAL {serial}")
        m = d.metrics()
        check(metric(m, "keymgr_static_hook_runs_total", env="dev", result="ok") == 1,
              "runs ok")
        check(metric(m, "keymgr_static_hook_failures", env="dev") == 0, "failures")

        # a failing hook: logged, counted, retried with the same paths
        set_mode(tmp, "fail")
        s.run("rotate", "dev/api", "--now", "--force")
        s.run("tick")
        ev = d.wait_event("static-hook", result="failed")
        check(ev.get("error") == "exited with status 7", f"failure logged: {ev}")
        m = d.metrics()
        check(metric(m, "keymgr_static_hook_runs_total", env="dev", result="failed") >= 1,
              "failed runs not counted")
        check(metric(m, "keymgr_static_hook_failures", env="dev") >= 1, "failures gauge")
        failed_args = runs(tmp)[1][5].split(" ")
        check("dev/api/jwks.json" in failed_args and failed_args[-1] == "manifest.json",
              f"failed run's paths: {failed_args}")
        set_mode(tmp, "ok")
        d.wait_event("static-hook", result="ok", count=2)
        last = runs(tmp)[-1]
        check(last[0] == "ok" and set(failed_args) <= set(last[5].split(" ")),
              f"the retry did not get the failed run's paths: {last}")
        wait_for(lambda: metric(d.metrics(), "keymgr_static_hook_failures", env="dev") == 0,
                 "failures back to 0")

        # a hook past the timeout: killed, counted, retried
        set_mode(tmp, "hang")
        s.run("rotate", "dev/api", "--now", "--force")
        s.run("tick")
        ev = d.wait_event("static-hook", result="failed", error="timed out after 2 s (killed)")
        with open(os.path.join(tmp, "hang.pid")) as f:
            pid = int(f.readline())   # the first run's (a retry may have started since)
        check(not os.path.exists(f"/proc/{pid}"), f"the timed-out hook {pid} still exists")
        check(metric(d.metrics(), "keymgr_static_hook_timeouts_total", env="dev") >= 1,
              "timeout not counted")
        set_mode(tmp, "ok")
        d.wait_event("static-hook", result="ok", count=3)

        # a reload without the hook drops it at once (no series in /metrics), runs nothing
        n_runs = len(runs(tmp))
        s.hook_lines = []
        s.write_config()
        s.run("reload")
        wait_for(lambda: 'keymgr_static_hook_runs_total{env="dev"' not in d.metrics(),
                 "the hook gone after the reload")
        s.run("rotate", "dev/api", "--now", "--force")
        s.run("tick")
        d.wait_event("static-tree", result="ok", count=5)
        check(len(runs(tmp)) == n_runs, "a removed hook ran")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d is not None and d.proc.poll() is None:
            d.stop()
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_config():
    tmp = tempfile.mkdtemp(prefix="kd-hook-bad-")
    try:
        for lines, static, words in (
                (["static_hook: [ sync.sh ]"], tmp, "absolute path"),
                (["static_hook: bin/sync"], tmp, "absolute path"),
                (["static_hook: [ ]"], tmp, "empty list"),
                (["static_hook: [ /bin/true ]"], None, "needs static_dir"),
                (["static_hook: [ /bin/true ]", "static_hook_timeout: 0"], tmp,
                 "static_hook_timeout"),
                (["static_hook_timeout: 99999"], tmp, "static_hook_timeout")):
            s = HookSetup(lines, static)
            try:
                p = s.run("policy", "check", "dev", expect=None)
                check(p.returncode != 0 and "static_hook" in p.stderr and words in p.stderr,
                      f"{lines}: {p.returncode} {p.stderr[-300:]}")
            finally:
                s.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(run_tests([
            ("static-hook.runs-retried-timeout", test_runs_retried_timeout),
            ("static-hook.bad-config", test_bad_config),
        ]))
    except Failure as e:
        print(f"FAIL {e}")
        sys.exit(1)
