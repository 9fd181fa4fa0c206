# SPDX-License-Identifier: Apache-2.0
"""Shared fixture of the probe suite: the verify suite's installation (real SoftHSM tokens,
stores and keymgr.yaml in a temp directory) with a probe section, and the small verifiers of
verifier.py started on 127.0.0.1.

Every probe these tests run is aimed at 127.0.0.1; nothing leaves the machine.
"""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
# The verify suite's fixture, under its own name (this file is "fixture" too).
_spec = importlib.util.spec_from_file_location("verify_fixture",
                                               os.path.join(HERE, "..", "verify", "fixture.py"))
verify_fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verify_fixture)

ISSUER = verify_fixture.ISSUER
PYTHON = "/usr/bin/python3"
# development's policy: max_token_ttl 30m (verify fixture's TTL).
MAX_TTL = 30 * 60
KEYMGR = None  # set by main()


class Installation(verify_fixture.Installation):
    """development and production of the verify fixture; development may be probed."""

    def __init__(self, keymgr, probe_envs=("development",), allowed_hosts=()):
        self.probe_envs = probe_envs
        self.allowed_hosts = allowed_hosts
        super().__init__(keymgr, envs=("production", "development"))

    def config_text(self):
        text = super().config_text()
        if self.probe_envs is None:
            return text
        return text + "probe:\n" + \
            f"  environments: [ {', '.join(self.probe_envs)} ]\n" + \
            f"  allowed_hosts: [ {', '.join(self.allowed_hosts)} ]\n"

    def write_config(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def isolated(self):
        """A keymgr that runs in a network namespace of its own (unshare -rn: not even
        loopback is up), for the URLs that must be refused: a regression would otherwise
        send real tokens off the machine. None when namespaces are not available."""
        if not hasattr(self, "_isolated"):
            path = os.path.join(self.dir, "keymgr-isolated")
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec unshare -rn "{self.keymgr}" "$@"\n')
            os.chmod(path, 0o755)
            ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
            self._isolated = path if ok else None
        return self._isolated

    def probe(self, ref, url, *extra, config=None, isolated=False):
        """keymgr probe REF --url URL --json EXTRA: (process, report or None)."""
        keymgr = self.keymgr
        if isolated:
            self.keymgr = self.isolated()
        try:
            p = self.run(*(["-c", config] if config else []), "probe", ref, "--url", url,
                         "--json", *extra, config=config is None)
        finally:
            self.keymgr = keymgr
        try:
            report = json.loads(p.stdout) if p.stdout.strip() else None
        except ValueError:
            report = None
        return p, report

    def audit(self, env, action):
        p = self.run("audit", "log", env, "--json", ok=True)
        return [e for e in json.loads(p.stdout) if e["action"] == action]


class Verifier:
    """verifier.py MODE on 127.0.0.1 for key set ref of inst: its url, and what it saw."""

    def __init__(self, inst, ref, mode, *flags, alg="ES256", typ="at+jwt",
                 aud="api.example.test", max_ttl=MAX_TTL):
        self.log = tempfile.mktemp(prefix="probe-verifier-", suffix=".log", dir=inst.dir)
        open(self.log, "w").close()
        jwks = inst.jwks_file(ref)
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(HERE, "verifier.py"), mode, "--jwks", jwks, "--alg", alg,
             "--iss", ISSUER, "--aud", aud, "--typ", typ, "--max-ttl", str(max_ttl),
             "--log", self.log, *flags],
            stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/api"

    def requests(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def closed_port():
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def graded(report, verdict):
    """The names of the checks with this verdict."""
    return sorted(c["name"] for c in report["checks"] if c["verdict"] == verdict)


def main():
    """Runs the calling test file's cases: PATH-TO-KEYMGR [unittest options]."""
    global KEYMGR
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} PATH-TO-KEYMGR [unittest options]", file=sys.stderr)
        sys.exit(2)
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(module="__main__", verbosity=2)
