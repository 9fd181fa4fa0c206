# SPDX-License-Identifier: Apache-2.0
"""Emergency work with a broken keymgr.yaml (keymgr(1), A BROKEN CONFIGURATION): real SoftHSM
tokens, real stores, the real keymgr and keymgrd.

The configuration is broken in several ways, one at a time, and each case shows what still
works and what is refused:
  - a YAML syntax error: nothing reads the file; keymgrd's socket is still found (its record
    next to the stores) so status, tick and reload reach it, and keymgrd refuses the reload;
  - a bad policy value in another environment: the read-only verbs and revoke work, with the
    error printed as a warning (file, line, problem); planning the broken one is refused;
  - an unknown key in another key set: revoke carries out its whole emergency plan, and the
    revoked key leaves the JWKS keymgrd serves when revoke returns;
  - a broken policy of the key set being revoked: the key is revoked, nothing is generated or
    promoted, the exposure is reported unknown;
  - a broken token section of the environment in use: every command on it is refused with the
    error; the other environments still work;
  - a file (or an include) writable by others or owned by someone else: everything is refused,
    naming the file and the chmod/chown that fixes it.
Every refused command is checked to have changed nothing: store rows, token objects, files.

Usage: /usr/bin/python3 test_broken_config.py PATH-TO-KEYMGR PATH-TO-KEYMGRD
"""
import http.client
import json
import os
import re
import sqlite3
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402
import daemon_fixture  # noqa: E402  (the keymgrd process helper of the daemon suite)

KEYMGRD = None  # set in __main__

CONFIG = """\
# SPDX-License-Identifier: Apache-2.0
# Written by tests/lifecycle/test_broken_config.py.
version: 1
environments:
  production:
    token:
      module: {module}
      label: keymgr-production
      pin: file:./pins/production.pin
    store: ./production.db
    policy:
      rotation_period: 30d
      jwks_max_age: 1h
      publish_lead: 2h
      standby: false
    keysets:
      api: {{ issuer: "https://auth.example.com", audiences: [ api.example.com ] }}
      web:
        issuer: "https://auth.example.com"
        audiences: [ api.example.com ]
  staging:
    token:
      module: {module}
      label: keymgr-staging
      pin: file:./pins/staging.pin
    store: ./staging.db
    policy:
      jwks_max_age: 10m
      publish_lead: 30m
    keysets:
      api: {{ issuer: "https://auth.staging.example.com", audiences: [ api.example.com ] }}
  development:
    token:
      module: {module}
      label: keymgr-development
      pin: file:./pins/development.pin
    store: ./development.db
daemon:
  listen: 127.0.0.1
  control_socket: ./ctl.sock
  poll_interval: 1
"""

# The ways to break it: (what, old text, new text). Each keeps the rest of the file valid.
SYNTAX = ("    store: ./staging.db\n", "    store: [ ./staging.db\n")
OTHER_ENV_POLICY = ("      jwks_max_age: 10m\n", "      jwks_max_age: forever\n")
OTHER_KEYSET_KEY = ("        audiences: [ api.example.com ]\n",
                    "        audiences: [ api.example.com ]\n        polcy: { standby: true }\n")
OWN_KEYSET_POLICY = ("        audiences: [ api.example.com ]\n",
                     "        audiences: [ api.example.com ]\n"
                     "        policy: { rotation_period: soon }\n")
PROD_TOKEN = ("      label: keymgr-production\n", "")
DAEMON_PORT = ("  poll_interval: 1\n", "  poll_interval: 1\n  port: 99999\n")


def config_text(*breaks):
    text = CONFIG.format(module=fixture.MODULE)
    for old, new in breaks:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def line_of(text, needle):
    """1-based line of the first line of text that contains needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


class BrokenConfigTest(InstallationTest):
    """Shared set-up: the configuration above, key sets production/api and /web and
    staging/api, each with an active key."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        cls.write(config_text())
        cls.kids = {}
        for ref, purpose in (("production/api", "access-token"), ("production/web", "id-token"),
                             ("staging/api", "access-token")):
            inst.create_keyset(ref, purpose)
            cls.kids[ref] = inst.rotate(ref)["kid"]

    @classmethod
    def write(cls, text):
        cls.text = text
        cls.inst.write_config("keymgr.yaml", text)

    def warns_at(self, p, needle, what):
        """stderr warns about the configuration error needle, with the file and its line."""
        line = line_of(self.text, needle)
        self.assertIn("keymgr: warning:", p.stderr)
        self.assertRegex(p.stderr, re.escape(f"{self.inst.config}:{line}:") + r"\d+: .*" +
                         re.escape(what))

    def active(self, ref):
        return [k["kid"] for k in self.inst.json("key", "list", ref, "--state", "active")]


class CliTest(BrokenConfigTest):
    """No keymgrd: what the command line does with each broken configuration."""

    def setUp(self):
        os.chmod(self.inst.config, 0o600)
        self.write(config_text())

    def test_a_syntax_error_nothing_reads_the_file(self):
        inst = self.inst
        self.write(config_text(SYNTAX))
        line = line_of(self.text, "store: [ ./staging.db")
        before = inst.snapshot()
        kid = self.kids["production/api"]
        for args in (["key", "list"], ["key", "list", "production/api"],
                     ["keyset", "show", "production/api"], ["jwks", "production"],
                     ["plan", "production/api"], ["audit", "verify", "production"],
                     ["revoke", "--env", "production", "--reason", "leak", "--", kid],
                     ["rotate", "production/api"]):
            p = inst.run(*args)
            self.assertRefused(p, 1, f"{inst.config}:")
            m = re.search(re.escape(inst.config) + r":(\d+):\d+: YAML syntax error", p.stderr)
            self.assertTrue(m and int(m.group(1)) >= line, p.stderr)  # where libfyaml noticed
        self.assertUnchanged(before, "commands on a file with a YAML syntax error")

    def test_b_bad_policy_in_another_environment(self):
        inst = self.inst
        self.write(config_text(OTHER_ENV_POLICY))
        before = inst.snapshot()
        kid = self.kids["production/api"]
        # The read-only verbs work on production, each warning about staging's error.
        for args in (["key", "list", "production"], ["key", "show", "--env", "production",
                                                      "--", kid],
                     ["key", "current", "production/api"], ["keyset", "list", "production"],
                     ["keyset", "show", "production/api"], ["jwks", "production"],
                     ["jwks", "production/api"], ["jwks", "history", "production"],
                     ["plan", "production"], ["policy", "show", "production"],
                     ["audit", "verify", "production"], ["audit", "log", "production"],
                     ["audit", "report", "production"], ["env", "list"]):
            p = inst.run(*args, ok=True)
            self.warns_at(p, "jwks_max_age: forever", "jwks_max_age")
        self.assertIn(kid, json.dumps(inst.jwks("production")))
        # Every environment: listed, staging included (its token and store are intact).
        p = inst.run("key", "list", ok=True)
        for ref in ("production/api", "production/web", "staging/api"):
            self.assertIn(self.kids[ref], p.stdout)
        # What needs staging's policy is refused with the error, never run on a default.
        p = inst.run("plan", "staging/api", rc=1)
        self.assertRefused(p, 1, "key set staging/api has errors", "jwks_max_age")
        self.assertEqual(p.stdout, "")
        p = inst.run("policy", "show", "staging", rc=1)
        self.assertIn("not shown", p.stdout)
        self.assertIn("jwks_max_age", p.stdout)
        # The verbs that change things and are not made for emergencies stay strict.
        p = inst.run("rotate", "production/api")
        self.assertRefused(p, 1, f"{inst.config}:{line_of(self.text, 'forever')}:")
        self.assertUnchanged(before, "read-only verbs and refused commands")

    def test_c_unknown_key_in_another_keyset_revoke_does_everything(self):
        inst = self.inst
        self.write(config_text(OTHER_KEYSET_KEY))
        p = inst.run("plan", "production/web", rc=1)
        self.assertIn("unknown key 'polcy'", p.stderr)
        inst.run("plan", "production/api", ok=True)
        kid = self.kids["production/api"]
        tokens_before = inst.token_objects("production")
        p = inst.run("revoke", "--env", "production", "--reason", "key leaked", "--json",
                     "--", kid, ok=True)
        self.warns_at(p, "polcy", "unknown key 'polcy'")
        r = json.loads(p.stdout)
        # The whole emergency plan, under the key set's validated policy: a new active key.
        self.assertEqual((r["state"], r["was"], r["policy_broken"]), ("revoked", "active", False))
        self.assertIsNotNone(r["replaced_by"])
        self.assertIsNotNone(r["exposure_until"])
        self.assertEqual(self.active("production/api"), [r["replaced_by"]])
        self.assertGreater(len(inst.token_objects("production")), len(tokens_before))
        kids = [k["kid"] for k in inst.jwks("production/api")["keys"]]
        self.assertNotIn(kid, kids)
        self.assertIn(r["replaced_by"], kids)
        self.__class__.kids["production/api"] = r["replaced_by"]
        # The audit log records the policy in force with the configuration's errors.
        c = sqlite3.connect(f"file:{inst.store('production')}?mode=ro", uri=True)
        try:
            after, = c.execute("SELECT after FROM audit_events WHERE action = 'policy.load' "
                               "ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            c.close()
        policy = json.loads(after)["policy"]
        policy = json.loads(policy) if isinstance(policy, str) else policy
        self.assertIn("polcy", policy["config_errors"])
        self.assertNotIn("web", policy["keysets"])
        self.assertIn("api", policy["keysets"])
        inst.run("audit", "verify", "production", ok=True)

    def test_d_broken_policy_of_the_revoked_keyset_revokes_only(self):
        inst = self.inst
        self.write(config_text(OWN_KEYSET_POLICY))
        kid = self.kids["production/web"]
        tokens_before = inst.token_objects("production")
        keys_before = inst.json("key", "list", "production/web")
        p = inst.run("revoke", "--env", "production", "--reason", "key leaked", "--json",
                     "--", kid, ok=True)
        r = json.loads(p.stdout)
        self.assertEqual((r["state"], r["was"], r["policy_broken"]), ("revoked", "active", True))
        self.assertIsNone(r["replaced_by"])
        self.assertIsNone(r["exposure_until"])
        self.assertIn("rotation_period", r["policy_error"])
        self.assertIn("revoked only", p.stderr)
        # Revoked, out of the JWKS, and nothing generated or promoted.
        self.assertEqual(inst.key(kid, "production")["state"], "revoked")
        self.assertEqual(self.active("production/web"), [])
        self.assertNotIn(kid, json.dumps(inst.jwks("production")))
        self.assertEqual(inst.token_objects("production"), tokens_before)
        self.assertEqual(len(inst.json("key", "list", "production/web")), len(keys_before))
        # The text output says the exposure is not known rather than guessing it.
        self.write(config_text())
        fresh = inst.rotate("production/web")["kid"]
        self.write(config_text(OWN_KEYSET_POLICY))
        p = inst.run("revoke", "--env", "production", "--reason", "again", "--", fresh, ok=True)
        self.assertIn("exposure: unknown", p.stdout)
        self.assertNotIn("may accept it until 20", p.stdout)
        # Rotating needs the policy: refused until the file is fixed.
        before = inst.snapshot()
        p = inst.run("rotate", "production/web")
        self.assertRefused(p, 1, "rotation_period")
        self.assertUnchanged(before, "rotate with a broken key set policy")

    def test_e_broken_token_of_the_environment_in_use(self):
        inst = self.inst
        self.write(config_text(PROD_TOKEN))
        before = inst.snapshot()
        kid = self.kids["production/api"]
        for args in (["revoke", "--env", "production", "--reason", "leak", "--", kid],
                     ["key", "list", "production"], ["key", "show", "--env", "production",
                                                      "--", kid],
                     ["keyset", "show", "production/api"], ["jwks", "production"],
                     ["plan", "production/api"], ["audit", "verify", "production"]):
            p = inst.run(*args)
            self.assertRefused(p, 1, "environment 'production' cannot be used",
                               "give exactly one of 'label' and 'serial'",
                               f"{inst.config}:")
        # The other environments work; a command over every environment lists them and
        # says that its answer is incomplete (exit 1).
        p = inst.run("key", "list", rc=1)
        self.assertIn(self.kids["staging/api"], p.stdout)
        self.assertNotIn(kid, p.stdout)
        self.warns_at(p, "token:", "give exactly one of 'label'")
        self.assertIn("incomplete", p.stderr)
        inst.run("keyset", "show", "staging/api", ok=True)
        inst.run("key", "list", "staging", ok=True)
        # "Verified" means every environment: one left out fails the check.
        p = inst.run("audit", "verify", rc=1)
        self.assertIn("incomplete", p.stderr)
        self.assertIn("audit verify staging: OK", p.stdout)
        self.assertUnchanged(before, "commands on an environment whose token section is broken")

    def test_f_file_mode_and_owner_refuse_everything(self):
        inst = self.inst
        before = inst.snapshot()
        kid = self.kids["staging/api"]
        cases = [("chmod", 0o664, None), ("chmod", 0o646, None)]
        if os.geteuid() == 0:
            cases.append(("chown", 0o600, 65534))
        for how, mode, owner in cases:
            os.chmod(inst.config, mode)
            if owner is not None:
                os.chown(inst.config, owner, owner)
            fix = f"chmod go-w {inst.config}" if how == "chmod" else f"chown root {inst.config}"
            try:
                for args in (["key", "list"], ["env", "list"],
                             ["revoke", "--env", "staging", "--reason", "leak", "--", kid],
                             ["status"], ["reload"], ["tick"]):
                    p = inst.run(*args)
                    self.assertRefused(p, 1, inst.config, "refused", fix)
                    self.assertNotIn("warning", p.stderr)
            finally:
                if owner is not None:
                    os.chown(inst.config, 0, 0)
                os.chmod(inst.config, 0o600)
        # An include file counts the same.
        inc = os.path.join(inst.dir, "team-policy.yaml")
        with open(inc, "w") as f:
            f.write("environments:\n  staging:\n    policy: { max_token_ttl: 30m }\n")
        os.chmod(inc, 0o620)
        self.write(config_text(("version: 1\n", "version: 1\ninclude: team-policy.yaml\n")))
        p = inst.run("revoke", "--env", "staging", "--reason", "leak", "--", kid)
        self.assertRefused(p, 1, inc, f"chmod go-w {inc}")
        os.unlink(inc)
        self.assertUnchanged(before, "commands refused for the file's mode or owner")


class DaemonTest(BrokenConfigTest):
    """keymgrd runs with the last good configuration while the file is broken."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        setup = types.SimpleNamespace(keymgrd_bin=KEYMGRD, config=inst.config, env=inst.env(),
                                      dir=inst.dir)
        cls.daemon = daemon_fixture.Daemon(setup)
        cls.socket = os.path.join(inst.dir, "ctl.sock")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.stop()
        finally:
            super().tearDownClass()

    def setUp(self):
        self.write(config_text())

    def served_kids(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, path)
        finally:
            c.close()
        return [k["kid"] for k in json.loads(body)["keys"]]

    def test_a_record_next_to_the_stores(self):
        for env in fixture.ENVS:
            rec = os.path.join(self.inst.dir, env + ".db.keymgrd")
            self.assertEqual(os.stat(rec).st_mode & 0o777, 0o644)
            with open(rec) as f:
                r = json.load(f)
            self.assertEqual((r["env"], r["control_socket"], r["config"]),
                             (env, self.socket, self.inst.config))

    def test_b_syntax_error_socket_found_reload_refused(self):
        inst = self.inst
        self.write(config_text(SYNTAX))
        state = {"KEYMGR_STATE_DIR": inst.dir}
        p = inst.run("status", env=state, ok=True)
        self.assertIn("keymgrd pid", p.stdout)
        self.assertIn("finding keymgrd without the configuration", p.stderr)
        self.assertIn("YAML syntax error", p.stderr)
        inst.run("tick", env=state, ok=True)
        p = inst.run("reload", env=state, rc=1)
        self.assertIn("keymgr: keymgrd:", p.stderr)
        self.assertIn("YAML syntax error", p.stderr)
        self.assertIsNone(self.daemon.proc.poll(), "keymgrd exited after a refused reload")
        self.assertIn(self.kids["staging/api"], self.served_kids("/staging/.well-known/jwks.json"))
        # Neither the file nor the state directory says where: said so, nothing guessed
        # (unless a keymgrd happens to use the default socket on this machine).
        if not os.path.exists("/run/keymgr/control.sock"):
            empty = os.path.join(inst.dir, "empty")
            os.makedirs(empty, exist_ok=True)
            p = inst.run("status", env={"KEYMGR_STATE_DIR": empty}, rc=1)
            self.assertIn("no keymgrd listening on /run/keymgr/control.sock (the default)",
                          p.stderr)

    def test_c_broken_daemon_section_socket_from_the_record(self):
        inst = self.inst
        self.write(config_text(DAEMON_PORT))
        p = inst.run("status", "production", ok=True)
        self.assertIn("keymgrd pid", p.stdout)
        self.warns_at(p, "port: 99999", "daemon.port")
        p = inst.run("reload", rc=1)
        self.assertIn("daemon.port", p.stderr)
        self.assertIsNone(self.daemon.proc.poll())

    def test_d_revoke_leaves_the_served_jwks_at_once(self):
        inst = self.inst
        self.write(config_text(OTHER_KEYSET_KEY, DAEMON_PORT))
        kid = self.kids["staging/api"]
        self.assertIn(kid, self.served_kids("/staging/.well-known/jwks.json"))
        p = inst.run("revoke", "--env", "staging", "--reason", "key leaked", "--", kid,
                     ok=True)
        self.warns_at(p, "polcy", "unknown key 'polcy'")
        # keymgrd was told through its record (the daemon section has errors) and served
        # the new JWKS before revoke returned.
        self.assertNotIn(kid, self.served_kids("/staging/.well-known/jwks.json"))
        self.assertNotIn(kid, self.served_kids("/staging/api/jwks.json"))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} PATH-TO-KEYMGR PATH-TO-KEYMGRD [unittest options]",
              file=sys.stderr)
        sys.exit(2)
    KEYMGRD = os.path.abspath(sys.argv.pop(2))
    fixture.main()
