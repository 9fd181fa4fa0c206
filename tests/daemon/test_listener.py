# SPDX-License-Identifier: Apache-2.0
"""keymgrd's listener: the process that parses HTTP holds no key access, and its failures
cost verifiers nothing (docs/architecture.md, "The listener"; issue 15, item 4).

confinement:   the listener (pid from keymgrd's start line and `keymgr status`) runs as a
               non-root uid with NoNewPrivs 1 and, in a build with seccomp, Seccomp 2; no
               PKCS#11 module is mapped in it; neither the PIN nor keymgrd's variables are in
               its environment; a scan of its whole memory (/proc/PID/mem) finds no PIN, while
               the same scan finds the JWKS document it serves (the scan can find things).
               The public port answers /metrics 404 and /healthz with the verdict only; the
               admin port answers /metrics and /healthz and no document.
restart:       SIGKILL of the listener: keymgrd logs why and starts another at once, which
               serves the same document (same ETag) at once; signing through keymgrd goes on
               while no listener runs; `keymgr status` and keymgr_listener_restarts_total
               count the restart.
seccomp-kill:  (builds with seccomp) the listener makes a system call outside its allow-list
               (a preloaded test library calls socket(2) on SIGUSR1): the kernel kills it with
               SIGSYS, keymgrd logs that and starts another; signing goes on.
metrics:       scraped from the admin port with Prometheus' own text parser
               (python3-prometheus-client): signing requests, refusals by reason and the
               latency histogram move by exactly what the test sent; a rotation moves the
               actions counter, the JWKS age and the next-event gauge; keymgr_build_info
               carries the version.
user:          daemon.listener_user root is refused at load; a user that does not exist stops
               keymgrd at start with a message naming it.

Usage: /usr/bin/python3 test_listener.py KEYMGR KEYMGRD SYSCALL_LIB SECCOMP(true|false)
                        SANITIZED(true|false)
In a sanitizer build the memory scan is left out: ASan reserves terabytes of shadow memory,
which /proc/PID/mem would page in; the plain build scans.
"""
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "signing"))
from signing_fixture import (CLAIMS, Daemon, Failure, SignSetup, call, check,  # noqa: E402
                             jwks_keys, run_tests, verify, wait_for)

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

keymgr, keymgrd, syscall_lib, seccomp_arg, sanitized_arg = sys.argv[1:6]
SECCOMP = seccomp_arg == "true"
SANITIZED = sanitized_arg == "true"
JWKS = "/dev/.well-known/jwks.json"


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def memory_contains(pid, needles):
    """Which of needles (bytes) occur anywhere in the readable memory of pid."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            for n in needles:
                if n in data:
                    found.add(n)
    return found


def listener_pid(s):
    return json.loads(s.run("status", "--json").stdout)["listener"]["pid"]


def sign_ok(s):
    r = call(s.socket, {"op": "sign", "keyset": "dev/api", "claims": CLAIMS, "ttl": "2s"})
    check(r.get("ok"), f"signing through keymgrd failed: {r}")
    return r["jwt"]


def started(extra_env=None, extra_daemon=""):
    s = SignSetup(keymgr, keymgrd, extra_daemon=extra_daemon)
    s.keyset_create("dev/api")
    s.run("rotate", "dev/api")
    if extra_env:
        s.env.update(extra_env)
    d = Daemon(s, verbose=False)
    d.wait_event("signing-key", keyset="api", result="ok")   # keymgrd signs from here on
    return s, d


def test_confinement():
    s, d = started()
    try:
        pid = d.listener_pid
        check(pid > 0 and pid != d.proc.pid, f"listener pid {pid}")
        check(listener_pid(s) == pid, "keymgr status names another listener")
        st = proc_status(pid)
        uids = [int(u) for u in st["Uid"].split()]
        check(all(u != 0 for u in uids), f"the listener runs with a root uid: {uids}")
        check(st["NoNewPrivs"].strip() == "1", f"NoNewPrivs {st['NoNewPrivs']}")
        want = "2" if SECCOMP else "0"
        check(st["Seccomp"].strip() == want, f"Seccomp {st['Seccomp']} (expected {want})")
        check((d.events("start")[0].get("listener_seccomp") == "on") == SECCOMP,
              "the start line says otherwise about seccomp")
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
        check(s.module not in maps and os.path.basename(s.module) not in maps,
              "the PKCS#11 module is mapped in the listener")
        with open(f"/proc/{d.proc.pid}/maps") as f:
            check(os.path.basename(s.module) in f.read(),
                  "the module is not in keymgrd's maps either: the check above proves nothing")
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
        pins = [p.encode() for p in s.pins.values()]
        check(not any(p in environ for p in pins), "a PIN is in the listener's environment")
        for var in (b"SOFTHSM2_CONF", b"KEYMGR_"):
            check(var not in environ, f"{var!r} is in the listener's environment")
        if not SANITIZED:
            body = d.http("GET", JWKS)[2]
            kid = json.loads(body)["keys"][0]["kid"].encode()
            found = memory_contains(pid, pins + [kid])
            check(kid in found, "the memory scan did not find the served kid: it cannot see")
            check(not (set(pins) & found), "a PIN is in the listener's memory")

        st, _, b = d.http("GET", "/metrics")
        check(st == 404, f"public /metrics: {st}")
        st, _, b = d.http("GET", "/healthz")
        check(st == 200 and b == b"ok\n", f"public /healthz: {st} {b!r}")
        st, _, b = d.admin("GET", "/healthz")
        check(st == 200 and b == b"ok\n", f"admin /healthz: {st} {b!r}")
        st, _, b = d.admin("GET", JWKS)
        check(st == 404, f"the admin port serves a document: {st}")
        check(b"keymgr_keys{" in d.admin("GET", "/metrics")[2], "admin /metrics")
        check(d.stop() == 0, "keymgrd did not exit 0")
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "the listener gone with keymgrd",
                 timeout=10)
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def wait_new_listener(s, d, old):
    def new():
        p = listener_pid(s)
        return p if p not in (0, old) else None
    pid = wait_for(new, "a new listener")
    wait_for(lambda: d.events("listener-ready", pid=str(pid)), "the new listener ready")
    return pid


def test_restart():
    s, d = started()
    try:
        old = d.listener_pid
        st, h, body = d.http("GET", JWKS)
        check(st == 200, f"GET {JWKS}: {st}")
        os.kill(old, signal.SIGKILL)
        # keymgrd signs whatever the listener does
        sign_ok(s)
        stopped = d.wait_event("listener-stopped")
        check("SIGKILL" in stopped.get("status", "") or "signal 9" in stopped.get("status", ""),
              f"the log does not say how it ended: {stopped}")
        pid = wait_new_listener(s, d, old)
        st2, h2, body2 = d.http("GET", JWKS)
        check(st2 == 200 and body2 == body and h2["etag"] == h["etag"],
              "the new listener does not serve the same document")
        verify(sign_ok(s), jwks_keys(d))
        st = json.loads(s.run("status", "--json").stdout)["listener"]
        check(st["restarts"] == 1 and st["pid"] == pid, f"status after a restart: {st}")
        metric = wait_for(lambda: sample(d, "keymgr_listener_restarts_total") == 1,
                          "keymgr_listener_restarts_total 1")
        check(metric, "restarts not counted")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def test_seccomp_kill():
    if not SECCOMP:
        print("skip seccomp-kill: built with -Dseccomp=false", flush=True)
        return
    s, d = started(extra_env={"LD_PRELOAD": syscall_lib})
    try:
        old = d.listener_pid
        check(proc_status(old)["Seccomp"].strip() == "2", "not confined")
        os.kill(old, signal.SIGUSR1)
        stopped = d.wait_event("listener-stopped")
        check("SIGSYS" in stopped.get("status", ""), f"not killed by SIGSYS: {stopped}")
        sign_ok(s)
        wait_new_listener(s, d, old)
        check(d.http("GET", JWKS)[0] == 200, "the new listener does not serve")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def families(d):
    return {f.name: f for f in text_string_to_metric_families(d.metrics())}


def sample(d, name, **labels):
    """The value of one sample of the admin /metrics, parsed by prometheus_client."""
    for fam in text_string_to_metric_families(d.metrics()):
        for smp in fam.samples:
            if smp.name == name and all(smp.labels.get(k) == v for k, v in labels.items()):
                return smp.value
    return None


def test_metrics():
    s, d = started()
    try:
        ks = {"env": "dev", "keyset": "api"}
        fams = families(d)
        info = [x for x in fams["keymgr_build_info"].samples]
        check(len(info) == 1 and info[0].labels.get("version") and info[0].value == 1,
              f"keymgr_build_info: {info}")
        for name in ("keymgr_sign_requests", "keymgr_sign_duration_seconds",
                     "keymgr_keyset_next_event_seconds", "keymgr_jwks_age_seconds",
                     "keymgr_listener_up"):
            check(name in fams, f"{name} missing from /metrics")
        base = sample(d, "keymgr_sign_requests_total", result="signed", **ks) or 0
        base_n = sample(d, "keymgr_sign_duration_seconds_count", **ks) or 0
        for _ in range(5):
            sign_ok(s)
        bad = call(s.socket, {"op": "sign", "keyset": "dev/api",
                              "claims": dict(CLAIMS, typ="logout+jwt"), "ttl": "2s"})
        check(not bad.get("ok"), "a reserved claim was signed")
        wait_for(lambda: sample(d, "keymgr_sign_requests_total", result="signed", **ks) ==
                 base + 5, "signed requests +5")
        check(sample(d, "keymgr_sign_duration_seconds_count", **ks) == base_n + 5,
              "latency histogram count +5")
        inf = sample(d, "keymgr_sign_duration_seconds_bucket", le="+Inf", **ks)
        check(inf == base_n + 5, f"+Inf bucket {inf}")
        check(sample(d, "keymgr_sign_requests_total", result="refused", **ks) == 1,
              "refused requests")
        check(sample(d, "keymgr_sign_refusals_total", reason=bad["code"], **ks) == 1,
              f"refusal by reason {bad['code']}")

        acts = sample(d, "keymgr_actions_total", env="dev", action="activate", result="ok") or 0
        s.run("rotate", "dev/api", "--now", "--force")
        s.run("tick")
        wait_for(lambda: sample(d, "keymgr_actions_total", env="dev", action="activate",
                                result="ok") is not None and
                 sample(d, "keymgr_actions_total", env="dev", action="activate",
                        result="ok") >= acts, "actions")
        age = wait_for(lambda: (lambda v: v if v is not None and v <= 1 else None)
                       (sample(d, "keymgr_jwks_age_seconds", path=JWKS)),
                       "the JWKS age back to 0 after the rotation")
        check(age <= 1, f"jwks age {age}")
        nxt = sample(d, "keymgr_keyset_next_event_seconds", **ks)
        check(nxt is not None and nxt >= 0, f"next event {nxt}")
        check(d.stop() == 0, "keymgrd did not exit 0")
    finally:
        if d.proc.poll() is None:
            d.stop()
        s.close()


def test_user():
    s = SignSetup(keymgr, keymgrd, extra_daemon="listener_user: root")
    try:
        p = subprocess.run([keymgrd, "-c", s.config, "--port", "0"], env=s.env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and "listener_user" in p.stderr and "root" in p.stderr,
              f"listener_user root: {p.returncode} {p.stderr[-400:]}")
        s.write_config(s.config_text(extra_daemon="listener_user: no-such-user-kmgr"))
        p = subprocess.run([keymgrd, "-c", s.config, "--port", "0"], env=s.env,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and "no-such-user-kmgr" in p.stderr,
              f"a missing listener user: {p.returncode} {p.stderr[-400:]}")
    finally:
        s.close()


if __name__ == "__main__":
    try:
        sys.exit(run_tests([
            ("listener.confinement", test_confinement),
            ("listener.restart", test_restart),
            ("listener.seccomp-kill", test_seccomp_kill),
            ("listener.metrics", test_metrics),
            ("listener.user", test_user),
        ]))
    except Failure as e:
        print(f"FAIL {e}")
        sys.exit(1)
