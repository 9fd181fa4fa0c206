# SPDX-License-Identifier: Apache-2.0
"""Shared fixture of the daemon suite: temporary SoftHSM tokens (one per environment, PINs in
mode-0600 files), a keymgr.yaml with policies shortened to seconds, the keymgr CLI, and a
keymgrd process on 127.0.0.1 with an ephemeral port (read back from its start log line).

Tests assert behaviour (states, documents, logs), never wall-clock durations; they only wait
for conditions, with generous limits.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER: binaries under valgrind, tests/common)

# The test policy: P (3s) >= M (2s) + S (1s); Ret (5s) >= T (2s) + M + S; R (8s) > P.
FAST_POLICY = {
    "rotation_period": "8s", "jwks_max_age": "2s", "max_token_ttl": "2s",
    "clock_skew": "1s", "publish_lead": "3s", "retire_retention": "5s",
    "destroy_after": "3s",
}


# libfaketime (Debian's libfaketime, installed by scripts/deps): an injected wall clock.
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class Failure(Exception):
    pass


class Clock:
    """The frozen wall clock every keymgr and keymgrd process of a Setup reads."""

    def __init__(self, setup, t):
        self.path = os.path.join(setup.dir, "clock")
        self.set(t)
        asan = setup.env.get("ASAN_OPTIONS", "")
        setup.env.update(LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=self.path,
                         FAKETIME_NO_CACHE="1", DONT_FAKE_MONOTONIC="1", TZ="UTC",
                         # the sanitizer runtime must come first unless told otherwise
                         ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")

    def set(self, t):
        self.now = t
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "\n")
        os.replace(tmp, self.path)


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(cond, what, timeout=60.0, step=0.1):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Failure(f"timed out waiting for {what}")
        time.sleep(step)


def parse_log_line(line):
    """key=value fields of one keymgrd log line (values may be "quoted")."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = bytes(v[1:-1], "utf-8").decode("unicode_escape")
        out[m.group(1)] = v
    return out


class Setup:
    """Tokens, PINs, stores and a configuration in one temporary directory."""

    def __init__(self, keymgr, keymgrd, envs=("dev",), policy=None, keyset_policy=None,
                 extra_daemon="", keysets=("api",), missing_tokens=()):
        self.keymgr_bin = keymgr
        self.keymgrd_bin = keymgrd
        self.module = os.environ.get("KEYMGR_TEST_SOFTHSM_MODULE",
                                     "/usr/lib/softhsm/libsofthsm2.so")
        self.dir = tempfile.mkdtemp(prefix="kd-")
        os.chmod(self.dir, 0o700)
        self.envs = list(envs)
        self.policy = dict(FAST_POLICY, **(policy or {}))
        self.keyset_policy = keyset_policy or {}
        # Key sets named in the config (issuer and audience, for keymgr sign), per environment.
        self.keysets = list(keysets) + [k for k in self.keyset_policy if k not in keysets]
        self.missing_tokens = set(missing_tokens)
        self.extra_daemon = extra_daemon
        self.stores = {}   # env -> store: (a postgresql:// URI); default DIR/ENV.db
        self.pins = {}
        tokens = os.path.join(self.dir, "tokens")
        os.mkdir(tokens, 0o700)
        os.mkdir(os.path.join(self.dir, "snap"), 0o755)
        self.softhsm_conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.softhsm_conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=self.softhsm_conf)
        for v in ("KEYMGR_CONFIG", "KEYMGR_TOKEN", "KEYMGR_PIN_SOURCE", "KEYMGR_CONTROL_SOCKET",
                  "NOTIFY_SOCKET"):
            self.env.pop(v, None)
        self.config = os.path.join(self.dir, "keymgr.yaml")
        self.socket = os.path.join(self.dir, "ctl.sock")
        for e in self.envs:
            user = self._pin(f"{e}.pin")
            so = self._pin(f"{e}.so.pin")
            if e in self.missing_tokens:
                continue
            self.run("token", "init", "--module", self.module, "--token", f"kd-{e}",
                     "--so-pin-source", "file:" + so, "--pin-source", "file:" + user)
        self.write_config()

    def _pin(self, name):
        pin = secrets.token_hex(8)
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, pin.encode() + b"\n")
        os.close(fd)
        self.pins[name] = pin
        return path

    def config_text(self, policy=None, keyset_policy=None, extra_daemon=None):
        policy = self.policy if policy is None else policy
        keyset_policy = self.keyset_policy if keyset_policy is None else keyset_policy
        lines = ["version: 1", "environments:"]
        for e in self.envs:
            lines += [f"  {e}:", "    token:", f"      module: {self.module}",
                      f"      label: kd-{e}", f"      pin: file:{self.dir}/{e}.pin",
                      f"    store: {self.stores.get(e, f'{self.dir}/{e}.db')}", "    http:",
                      f"      snapshots: [ {self.dir}/snap/{e}.json ]", "    policy:"]
            lines += [f"      {k}: {v}" for k, v in policy.items()]
            if self.keysets:
                lines += ["    keysets:"]
            for ks in self.keysets:
                lines += [f"      {ks}:", "        issuer: https://issuer.test",
                          "        audiences: [ api.test ]"]
                pol = keyset_policy.get(ks)
                if pol:
                    lines += ["        policy:"]
                    for k, v in pol.items():
                        if isinstance(v, list):
                            v = "[ " + ", ".join(v) + " ]"
                        lines += [f"          {k}: {v}"]
        # admin_port 0: the admin socket (/metrics, /healthz) on an ephemeral port
        extra = self.extra_daemon if extra_daemon is None else extra_daemon
        lines += ["daemon:", "  listen: 127.0.0.1", "  port: 8080", "  admin_port: 0",
                  f"  control_socket: {self.socket}"]
        if "poll_interval:" not in (extra or ""):   # a test may set its own
            lines += ["  poll_interval: 1"]
        if extra:
            lines += ["  " + l for l in extra.strip().splitlines()]
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text() if text is None else text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config)

    def run(self, *args, expect=0, timeout=300):
        argv, tag = wrapper.wrap([self.keymgr_bin, "-c", self.config, *args]
                                 if args[0] != "token" else [self.keymgr_bin, *args])
        p = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                           timeout=wrapper.timeout(timeout))
        report = wrapper.check(tag)
        if report:
            raise Failure(f"keymgr {' '.join(args[:2])}: {wrapper.WRAPPER[0]} found errors:\n"
                          f"{report}")
        for pin in self.pins.values():
            check(pin not in p.stdout and pin not in p.stderr,
                  f"a PIN appears in the output of keymgr {' '.join(args[:2])}")
        if expect is not None and p.returncode != expect:
            raise Failure(f"keymgr {' '.join(args)} exited {p.returncode} (expected {expect}):"
                          f" {p.stderr.strip()}")
        return p

    def sign(self, ref, ttl="2s"):
        claims = '{"sub":"alice","aud":"api.test","client_id":"test-client"}'
        return self.run("sign", ref, "--claims", claims, "--ttl", ttl).stdout.strip()

    def keyset_create(self, ref, alg="ES256", *extra):
        # --no-key: keymgrd (or the test) makes the first key, as these tests expect.
        self.run("keyset", "create", ref, "--no-key", "--alg", alg, "--owner",
                 "platform-security",
                 "--purpose", "access-token", *extra)

    def keys(self, ref):
        out = self.run("key", "list", ref, "--json").stdout
        return json.loads(out)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """A keymgrd process; its log goes to a file so the test can read it at any time."""

    def __init__(self, setup, *args, verbose=True):
        self.s = setup
        self.log_path = os.path.join(setup.dir, f"keymgrd-{secrets.token_hex(3)}.log")
        self.log = open(self.log_path, "w")
        argv = [setup.keymgrd_bin, "-c", setup.config, "--port", "0", *args]
        if verbose:
            argv.append("--verbose")
        argv, self.wrapper_tag = wrapper.wrap(argv)
        self.proc = subprocess.Popen(argv, env=setup.env, stdout=self.log, stderr=self.log)
        start = self.wait_event("start", timeout=wrapper.timeout(60))
        self.port = int(start["port"])
        self.admin_port = int(start["admin_port"]) if "admin_port" in start else None
        self.listener_pid = int(start["listener_pid"])

    def lines(self):
        with open(self.log_path) as f:
            return [parse_log_line(l) for l in f.read().splitlines() if l.strip()]

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def events(self, event, **match):
        return [l for l in self.lines() if l.get("event") == event and
                all(l.get(k) == v for k, v in match.items())]

    def wait_event(self, event, timeout=60.0, count=1, **match):
        def ready():
            if self.proc.poll() is not None and event != "stop":
                raise Failure(f"keymgrd exited ({self.proc.returncode}) while waiting for "
                              f"{event}: {self.text()[-2000:]}")
            ev = self.events(event, **match)
            return ev[count - 1] if len(ev) >= count else None
        return wait_for(ready, f"log event {event} {match}", timeout)

    def http(self, method, path, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def admin(self, method, path, headers=None):
        """A request to the admin socket (/metrics, /healthz)."""
        check(self.admin_port is not None, "keymgrd has no admin socket (daemon.admin_port)")
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def metrics(self):
        st, _, body = self.admin("GET", "/metrics")
        check(st == 200, f"GET /metrics on the admin socket: {st}")
        return body.decode()

    def jwks(self, path, verifier=None):
        st, h, b = self.http("GET", path, {"Keymgr-Verifier": verifier} if verifier else None)
        check(st == 200, f"GET {path}: {st}")
        return json.loads(b), h

    def kids(self, path, verifier=None):
        return [k["kid"] for k in self.jwks(path, verifier)[0]["keys"]]

    def stop(self, sig=signal.SIGTERM, timeout=120):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wrapper.timeout(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("keymgrd did not stop after SIGTERM")
        self.log.close()
        report = wrapper.check(self.wrapper_tag)
        if report:
            raise Failure(f"keymgrd: {wrapper.WRAPPER[0]} found errors:\n{report}")
        return self.proc.returncode


def run_tests(tests):
    """Runs (name, fn) pairs; prints one line each; returns the exit status."""
    import traceback
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    late = wrapper.sweep()  # processes the tests started themselves, daemons not stopped
    if late:
        failed += 1
        print(f"FAIL {wrapper.WRAPPER[0]} found errors:\n{late}", flush=True)
    return 1 if failed else 0
