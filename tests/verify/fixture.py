# SPDX-License-Identifier: Apache-2.0
"""Shared fixture of the verify suite: a private keymgr installation in a temp directory.

Installation() makes one directory holding
  softhsm2.conf + tokens/   SoftHSM's configuration and object store (SOFTHSM2_CONF)
  pins/ENV.pin, ENV.so.pin  random PINs, mode 0600, WITHOUT a trailing newline (keymgr reads
                            the first line; libp11's pin-source=file: reads the whole file)
  keymgr.yaml               the environments of ENVIRONMENTS below, with the key sets' issuer
                            and audiences (the claims policy needs them)
and one SoftHSM token per environment, made with `keymgr token init`.

Every keymgr run goes through Installation.run(), which also checks what must hold for every
output: no PIN, no sanitizer report.
"""
import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile

MODULE = os.environ.get("KEYMGR_TEST_SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
ISSUER = "https://auth.example.test"
ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA"]

# environment -> {keyset -> (purpose, audiences)}; every key set gets issuer ISSUER except
# production/no-issuer, which the configuration does not mention at all.
ENVIRONMENTS = {
    "production": {
        "api": ("access-token", ["api.example.test", "admin.example.test"]),
        "idt": ("id-token", ["client-1"]),
        "logout": ("logout-token", ["client-1"]),
        "events": ("security-event-token", ["receiver.example.test"]),
    },
    "development": {"alg-" + a.lower(): ("access-token", ["api.example.test"]) for a in ALGS},
    # libp11 issuers: EC and RSA keys only; "mixed" also holds an Ed25519 key.
    "issuer": {name: ("access-token", ["api.example.test"]) for name in ("es256", "es512",
                                                                          "rs256")},
    "mixed": {name: ("access-token", ["api.example.test"]) for name in ("es256", "ed")},
}
TTL = {"production": "1h", "development": "30m", "issuer": "1h", "mixed": "1h"}


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Failure(AssertionError):
    pass


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Installation:
    def __init__(self, keymgr, envs=("production", "development", "issuer")):
        self.keymgr = keymgr
        self.envs = envs
        self.dir = tempfile.mkdtemp(prefix="keymgr-verify-")
        os.chmod(self.dir, 0o700)
        tokens = os.path.join(self.dir, "tokens")
        self.pins_dir = os.path.join(self.dir, "pins")
        os.mkdir(tokens, 0o700)
        os.mkdir(self.pins_dir, 0o700)
        self.softhsm_conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.softhsm_conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.secrets = []
        for env in envs:
            for suffix in ("", ".so"):
                pin = secrets.token_hex(10)
                self.secrets.append(pin)
                write_secret(os.path.join(self.pins_dir, env + suffix + ".pin"), pin)
        self.env = dict(os.environ, SOFTHSM2_CONF=self.softhsm_conf)
        for v in ("KEYMGR_TOKEN", "KEYMGR_PIN_SOURCE", "KEYMGR_MODULE", "KEYMGR_CONFIG",
                  "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                  "ALL_PROXY"):
            self.env.pop(v, None)
        for env in envs:
            self.run("token", "init", "--module", MODULE, "--token", self.token_label(env),
                     "--so-pin-source", "file:" + self.pin_file(env + ".so"),
                     "--pin-source", "file:" + self.pin_file(env), config=False, ok=True)
        self.config = os.path.join(self.dir, "keymgr.yaml")
        with open(self.config, "w") as f:
            f.write(self.config_text())

    def token_label(self, env):
        return "vt-" + env

    def pin_file(self, env):
        return os.path.join(self.pins_dir, env + ".pin")

    def config_text(self):
        lines = ["# SPDX-License-Identifier: Apache-2.0", "# Written by tests/verify/fixture.py.",
                 "version: 1", "environments:"]
        for env in self.envs:
            lines += [f"  {env}:", "    token:", f"      module: {MODULE}",
                      f"      label: {self.token_label(env)}",
                      f"      pin: file:{self.pin_file(env)}",
                      f"    store: {self.dir}/{env}.db",
                      "    http:", f"      path: /{env}",
                      "    policy:", f"      max_token_ttl: {TTL[env]}"]
            if env == "production":
                lines += ["      require_distinct_purpose: false"]
            lines += ["    keysets:"]
            for name, (_purpose, auds) in ENVIRONMENTS[env].items():
                lines += [f"      {name}:", f"        issuer: {ISSUER}",
                          f"        audiences: [ {', '.join(auds)} ]"]
        return "\n".join(lines) + "\n"

    def run(self, *args, config=True, ok=None, input=None, env=None):
        cmd = [self.keymgr] + (["-c", self.config] if config else []) + list(args)
        p = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True,
                           timeout=300, input=input)
        out = p.stdout + p.stderr
        for pin in self.secrets:
            if pin in out:
                raise Failure(f"a PIN appears in the output of keymgr {' '.join(args[:2])}")
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            if marker in out:
                raise Failure(f"sanitizer report from keymgr {' '.join(args[:2])}:\n{out}")
        if ok is True and p.returncode != 0:
            raise Failure(f"keymgr {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
        return p

    def create(self, ref, purpose, alg="ES256"):
        """Creates key set ref with its first key (keyset create makes it); returns the kid."""
        bits = ["--bits", "3072" if ref.startswith("production/") else "2048"] \
            if alg[:2] in ("RS", "PS") else []
        self.run("keyset", "create", ref, "--alg", alg, "--owner", "verify-tests",
                 "--purpose", purpose, *bits, ok=True)
        return self.run("key", "current", ref, ok=True).stdout.strip()

    def jwks_file(self, ref):
        path = os.path.join(self.dir, ref.replace("/", "-") + ".jwks.json")
        self.run("jwks", ref, "--output", path, ok=True)
        return path

    def sign(self, ref, claims, *extra):
        return self.run("sign", ref, "--claims", json.dumps(claims), *extra)

    def verify(self, token, jwks, alg, typ, aud="api.example.test", iss=ISSUER, *extra):
        return self.run("verify", "--jwks", jwks, "--alg", alg, "--iss", iss, "--aud", aud,
                        "--typ", typ, *extra, "-", config=False, input=token)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
