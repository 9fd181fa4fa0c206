# SPDX-License-Identifier: Apache-2.0
"""Shared fixture of the lifecycle tests: a private keymgr installation in a temp directory.

Each test class gets its own directory holding
  softhsm2.conf + tokens/      SoftHSM's configuration and object store (SOFTHSM2_CONF)
  pins/ENV.pin, ENV.so.pin     random PINs, mode 0600, written here (never on a command line)
  keymgr.yaml                  three environments (production, staging, development), one
                               token/store/HTTP path each, paths relative to the file
  ENV.db                       the stores, created by keymgr on first use
and three tokens keymgr-production, -staging, -development made with `keymgr token init`.

Every keymgr run goes through Installation.run(), which also checks what must hold for
every output: no PIN, no sanitizer report.

Usage of a test file: /usr/bin/python3 test_X.py PATH-TO-KEYMGR [unittest options]
"""
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import wrapper  # noqa: E402  (KEYMGR_TEST_WRAPPER: keymgr under valgrind, tests/common)
MODULE = os.environ.get("KEYMGR_TEST_SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
ENVS = ("production", "staging", "development")
KEYMGR = None  # set by main()

# Issuers of the key sets that sign (environments.ENV.keysets.NAME.issuer).
ISSUER = {"production": "https://auth.example.com", "staging": "https://auth.staging.example.com"}
AUDIENCE = "api.example.com"
# Claims every token class of the tests accepts (RFC 9068 wants sub and client_id).
CLAIMS = {"sub": "alice", "client_id": "lifecycle-tests", "aud": AUDIENCE}

# The production policy of the test configuration (seconds), for timing assertions.
PROD_PUBLISH_LEAD = 2 * 3600
PROD_RETIRE_RETENTION = 24 * 3600

CONFIG = """\
# SPDX-License-Identifier: Apache-2.0
# Written by tests/lifecycle/fixture.py.
version: 1
defaults:
  policy:
    clock_skew: 5m
environments:
  production:
    token:
      module: {module}
      label: keymgr-production
      pin: file:{pins}/production.pin
    store: {root}production.db
    http:
      path: /production
      snapshots: [ {root}jwks-production.json ]
    policy:
      rotation_period: 30d
      jwks_max_age: 1h
      max_token_ttl: 1h
      publish_lead: 2h
      retire_retention: 1d
      destroy_after: 30d
      purposes: [ access-token, id-token, refresh-token, logout-token,
                  security-event-token, life, successor, conc, names, wall, json-one,
                  json-two ]
    keysets:
      api: {{ issuer: "{prod_iss}", audiences: [ api.example.com ] }}
      life: {{ issuer: "{prod_iss}", audiences: [ api.example.com ] }}
      successor: {{ issuer: "{prod_iss}", audiences: [ api.example.com ] }}
      wall: {{ issuer: "{prod_iss}", audiences: [ api.example.com ] }}
      json-three: {{ issuer: "{prod_iss}", audiences: [ api.example.com ] }}
  staging:
    token:
      module: {module}
      label: keymgr-staging
      pin: file:{pins}/staging.pin
    store: {root}staging.db
    http:
      path: /staging
    policy:
      rotation_period: 14d
      jwks_max_age: 10m
      publish_lead: 30m
    keysets:
      api: {{ issuer: "{staging_iss}", audiences: [ api.example.com ] }}
      revoked: {{ issuer: "{staging_iss}", audiences: [ api.example.com ] }}
      wall: {{ issuer: "{staging_iss}", audiences: [ api.example.com ] }}
  development:
    token:
      module: {module}
      label: keymgr-development
      pin: file:{pins}/development.pin
    store: {root}development.db
    http:
      path: /development
"""


class Failure(AssertionError):
    pass


def write_secret(path, text):
    """Writes text to a new file of mode 0600 (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Installation:
    """One temp directory with SoftHSM tokens, PIN files and a keymgr.yaml."""

    def __init__(self, absolute_paths=False):
        self.dir = tempfile.mkdtemp(prefix="keymgr-lifecycle-")
        os.chmod(self.dir, 0o700)
        self.tokens = os.path.join(self.dir, "tokens")
        self.pins_dir = os.path.join(self.dir, "pins")
        os.mkdir(self.tokens, 0o700)
        os.mkdir(self.pins_dir, 0o700)
        self.softhsm_conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.softhsm_conf, "w") as f:
            f.write(f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
        self.pins = {}
        self.outputs_checked = 0
        for env in ENVS:
            pin, so_pin = secrets.token_hex(12), secrets.token_hex(12)
            self.pins[env] = pin
            self.pins[env + ".so"] = so_pin
            write_secret(self.pin_file(env), pin + "\n")
            write_secret(os.path.join(self.pins_dir, env + ".so.pin"), so_pin + "\n")
        for env in ENVS:
            self.run("token", "init", "--module", MODULE, "--token", "keymgr-" + env,
                     "--so-pin-source", "file:" + os.path.join(self.pins_dir, env + ".so.pin"),
                     "--pin-source", "file:" + self.pin_file(env), config=False, ok=True)
        self.config = self.write_config("keymgr.yaml", absolute_paths=absolute_paths)

    def pin_file(self, env):
        return os.path.join(self.pins_dir, env + ".pin")

    def store(self, env):
        return os.path.join(self.dir, env + ".db")

    def config_text(self, absolute_paths=False):
        if absolute_paths:
            return CONFIG.format(module=MODULE, pins=self.pins_dir, root=self.dir + "/",
                                 prod_iss=ISSUER["production"], staging_iss=ISSUER["staging"])
        return CONFIG.format(module=MODULE, pins="./pins", root="./",
                             prod_iss=ISSUER["production"], staging_iss=ISSUER["staging"])

    def write_config(self, name, text=None, absolute_paths=False):
        """Writes a configuration file (default: the standard one) into the temp dir."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text if text is not None else self.config_text(absolute_paths))
        os.chmod(path, 0o600)
        return path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- running keymgr ---------------------------------------------------------------------

    def env(self, extra=None):
        """keymgr's environment; extra: variables to set (a None value removes one)."""
        e = dict(os.environ, SOFTHSM2_CONF=self.softhsm_conf)
        for v in ("KEYMGR_CONFIG", "KEYMGR_TOKEN", "KEYMGR_PIN_SOURCE", "KEYMGR_MODULE",
                  "KEYMGR_CONTROL_SOCKET", "KEYMGR_STATE_DIR"):
            e.pop(v, None)
        for k, v in (extra or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def _argv_tagged(self, args, config=None):
        cmd = [KEYMGR]
        if config is not False:
            cmd += ["-c", config if config is not None else self.config]
        return wrapper.wrap(cmd + list(args))

    def argv(self, args, config=None):
        """keymgr's command line (behind KEYMGR_TEST_WRAPPER when it is set)."""
        return self._argv_tagged(args, config)[0]

    def check_output(self, what, out, err):
        """What must hold for every output: no PIN, no sanitizer report."""
        for name, pin in self.pins.items():
            if pin in out or pin in err:
                raise Failure(f"{what}: the PIN of {name} appears in the output")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in err:
                raise Failure(f"{what}: sanitizer report:\n{err}")
        self.outputs_checked += 1

    def run(self, *args, config=None, ok=None, rc=None, stdin=None, umask=None, env=None):
        """Runs keymgr [-c CONFIG] ARGS. ok=True: exit 0 expected; rc=N: exit N expected.
        env: extra environment variables (see env())."""
        preexec = (lambda: os.umask(umask)) if umask is not None else None
        argv, tag = self._argv_tagged(args, config)
        p = subprocess.run(argv, cwd=self.dir, env=self.env(env), input=stdin,
                           capture_output=True, text=True, timeout=wrapper.timeout(120),
                           preexec_fn=preexec)
        what = "keymgr " + " ".join(repr(a) if not a.isprintable() else a for a in args)
        report = wrapper.check(tag)
        if report:
            raise Failure(f"{what}: {wrapper.WRAPPER[0]} found errors:\n{report}")
        self.check_output(what, p.stdout, p.stderr)
        if ok and p.returncode != 0:
            raise Failure(f"{what}: exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        if rc is not None and p.returncode != rc:
            raise Failure(f"{what}: exit {p.returncode}, expected {rc}\nstdout: {p.stdout}\n"
                          f"stderr: {p.stderr}")
        return p

    def json(self, *args, config=None):
        args = list(args)
        at = args.index("--") if "--" in args else len(args)  # options before "--"
        args.insert(at, "--json")
        p = self.run(*args, config=config, ok=True)
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise Failure(f"keymgr {' '.join(args)} --json: not JSON ({e}): {p.stdout!r}")

    # -- high-level helpers -----------------------------------------------------------------

    def create_keyset(self, ref, purpose, alg="ES256", owner="platform-security", key=False):
        """keyset create; without key=True with --no-key, so that the test's own `rotate`
        makes the first key (keyset create's own first key: test_keyset_create.py)."""
        return self.json("keyset", "create", ref, "--alg", alg, "--owner", owner,
                         "--purpose", purpose, *([] if key else ["--no-key"]))

    def rotate(self, ref, now=False):
        return self.json("rotate", ref, *(["--now", "--force"] if now else []))

    def sign_args(self, ref, claims=None):
        """keymgr sign arguments for ref with valid claims (exp set by keymgr: --ttl)."""
        return ["sign", ref, "--claims", json.dumps(claims or CLAIMS), "--ttl", "10m"]

    def sign(self, ref, claims=None):
        return self.run(*self.sign_args(ref, claims), ok=True).stdout.strip()

    def jwks(self, ref):
        p = self.run("jwks", ref, ok=True)
        return json.loads(p.stdout)

    def jwks_kids(self, ref):
        return sorted(k["kid"] for k in self.jwks(ref)["keys"])

    def keys(self, ref):
        return self.json("key", "list", ref)

    def key(self, kid, env):
        # "--" first: a kid may start with "-" (base64url).
        return self.json("key", "show", "--env", env, "--", kid)

    # -- looking at the store and the token without keymgr ----------------------------------

    def db_rows(self, env):
        """Every row of every table of env's store, read-only, as a dict of lists."""
        path = self.store(env)
        if not os.path.exists(path):
            return None
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            out = {"user_version": c.execute("PRAGMA user_version").fetchone()[0]}
            for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                  "ORDER BY name").fetchall():
                out[t] = c.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall()
            return out
        finally:
            c.close()

    def db_key(self, env, kid):
        """The keys row of kid as a dict (read-only), or None."""
        c = sqlite3.connect(f"file:{self.store(env)}?mode=ro", uri=True)
        c.row_factory = sqlite3.Row
        try:
            row = c.execute("SELECT * FROM keys WHERE kid = ?", (kid,)).fetchone()
            return dict(row) if row else None
        finally:
            c.close()

    def db_query(self, env, sql, params=()):
        c = sqlite3.connect(f"file:{self.store(env)}?mode=ro", uri=True)
        try:
            return c.execute(sql, params).fetchall()
        finally:
            c.close()

    def token_objects(self, env, pin_file=None):
        """The token's objects, seen through PKCS#11 by tests/lifecycle/p11inspect.py."""
        p = subprocess.run([sys.executable, os.path.join(HERE, "p11inspect.py"), MODULE,
                            "keymgr-" + env, pin_file or self.pin_file(env)],
                           env=self.env(), capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Failure(f"p11inspect {env}: {p.stderr}")
        return sorted((o["class"], o["id"], o["label"]) for o in json.loads(p.stdout)["objects"])

    def token_ids(self, env):
        """{cka_id_hex: sorted classes} of env's token."""
        ids = {}
        for cls, oid, _ in self.token_objects(env):
            ids.setdefault(oid, []).append(cls)
        return {k: sorted(v) for k, v in ids.items()}

    def snapshot(self):
        """The state a refused operation must not change: every store's rows, every token's
        objects, and the names of the files in the temp dir (but the configuration files
        that tests write)."""
        return {
            "db": {env: self.db_rows(env) for env in ENVS},
            "token": {env: self.token_objects(env) for env in ENVS},
            "files": sorted(n for n in os.listdir(self.dir)
                            if not n.endswith(("-wal", "-shm", ".yaml"))),
        }

    def file_digest(self, path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()


class InstallationTest(unittest.TestCase):
    """A test class with its own Installation (set up once per class)."""

    absolute_paths = False

    @classmethod
    def setUpClass(cls):
        cls.inst = Installation(absolute_paths=cls.absolute_paths)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def assertRefused(self, p, rc, *needles):
        """p exited with rc and its stderr names every needle; stdout carries nothing."""
        self.assertEqual(p.returncode, rc, f"exit {p.returncode}, expected {rc}; stderr: "
                         f"{p.stderr}")
        self.assertTrue(p.stderr.startswith("keymgr: "), f"stderr: {p.stderr!r}")
        for n in needles:
            self.assertIn(n, p.stderr)

    def assertUnchanged(self, before, what):
        after = self.inst.snapshot()
        for part in ("db", "token", "files"):
            self.assertEqual(before[part], after[part], f"{what} changed the {part}")


def main():
    global KEYMGR
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} PATH-TO-KEYMGR [unittest options]", file=sys.stderr)
        sys.exit(2)
    KEYMGR = os.path.abspath(sys.argv[1])
    argv = [sys.argv[0]] + sys.argv[2:]
    prog = unittest.main(module="__main__", argv=argv, verbosity=2, exit=False)
    result = prog.result
    print(f"\n{os.path.basename(sys.argv[0])}: {result.testsRun} cases, "
          f"{len(result.failures)} failed, {len(result.errors)} errors, "
          f"{len(result.skipped)} skipped")
    late = wrapper.sweep()  # keymgr processes a test started itself from argv()
    if late:
        print(f"{wrapper.WRAPPER[0]} found errors:\n{late}")
    if result.testsRun == 0 or not result.wasSuccessful() or late:
        sys.exit(1)
    sys.exit(0)
