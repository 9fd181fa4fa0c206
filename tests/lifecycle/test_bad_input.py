# SPDX-License-Identifier: Apache-2.0
"""Bad input to the keymgr CLI: each case must exit non-zero with a clear message on stderr
and leave every store (all rows) and every token (all objects) exactly as they were.

Usage: /usr/bin/python3 test_bad_input.py PATH-TO-KEYMGR
"""
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402

UNKNOWN_KID = "A" * 43


class BadInputTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        inst.create_keyset("production/api", "access-token")
        cls.active = inst.rotate("production/api")["kid"]
        inst.create_keyset("staging/api", "access-token")
        inst.rotate("staging/api")

    def setUp(self):
        self.before = self.inst.snapshot()

    def tearDown(self):
        self.assertUnchanged(self.before, self.id().split(".")[-1])

    def test_unknown_environment(self):
        inst = self.inst
        for args in (["keyset", "create", "nope/api", "--alg", "ES256", "--owner", "o",
                      "--purpose", "access-token"],
                     ["keyset", "show", "nope/api"], ["keyset", "list", "nope"],
                     ["rotate", "nope/api"], ["jwks", "nope"], ["sign", "nope/api",
                                                                "--claims", "{}"],
                     ["key", "list", "nope"],
                     ["revoke", "--env", "nope", "--reason", "x", "--", self.active],
                     ["destroy", "--env", "nope", "--", self.active],
                     ["key", "show", "--env", "nope", "--", self.active]):
            with self.subTest(verb=args[0]):
                p = inst.run(*args)
                self.assertRefused(p, 1, "unknown environment 'nope'",
                                   "production, staging, development")
        self.assertFalse(os.path.exists(os.path.join(inst.dir, "nope.db")))

    def test_malformed_keyset_name(self):
        for ref in ("production/Api", "production/a_b", "production/a--b", "production",
                    "production/1api"):
            p = self.inst.run("keyset", "create", ref, "--alg", "ES256", "--owner", "o",
                              "--purpose", "id-token")
            with self.subTest(ref=ref):
                self.assertRefused(p, 2, ref, "Try 'keymgr keyset create --help'")

    def test_duplicate_keyset(self):
        for env, purpose in (("production", "access-token"), ("production", "id-token"),
                             ("staging", "access-token")):
            p = self.inst.run("keyset", "create", env + "/api", "--alg", "ES256", "--owner",
                              "platform-security", "--purpose", purpose)
            with self.subTest(env=env, purpose=purpose):
                self.assertRefused(p, 1, f"key set {env}/api already exists")

    def test_missing_owner(self):
        p = self.inst.run("keyset", "create", "staging/new", "--alg", "ES256", "--purpose",
                          "access-token")
        self.assertRefused(p, 2, "missing --owner")
        p = self.inst.run("keyset", "create", "staging/new", "--alg", "ES256", "--owner", "",
                          "--purpose", "access-token")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("owner", p.stderr)

    def test_unknown_purpose(self):
        for purpose in ("Access Token", "access token", "ACCESS-TOKEN"):
            p = self.inst.run("keyset", "create", "staging/new", "--alg", "ES256", "--owner",
                              "o", "--purpose", purpose)
            with self.subTest(purpose=purpose):
                self.assertRefused(p, 1, f"unknown purpose '{purpose}'", "access-token")
        # A well-formed purpose production's policy does not list.
        p = self.inst.run("keyset", "create", "production/new", "--alg", "ES256", "--owner",
                          "o", "--purpose", "not-listed")
        self.assertRefused(p, 1, "purpose 'not-listed'", "policy", "production")

    def test_unknown_algorithm_and_weak_rsa(self):
        p = self.inst.run("keyset", "create", "staging/new", "--alg", "HS256", "--owner", "o",
                          "--purpose", "id-token")
        self.assertRefused(p, 2, "unknown algorithm 'HS256'")
        p = self.inst.run("keyset", "create", "staging/new", "--alg", "RS256", "--bits", "1024",
                          "--owner", "o", "--purpose", "id-token")
        self.assertRefused(p, 2, "1024")
        # production's policy requires 3072-bit RSA.
        p = self.inst.run("keyset", "create", "production/new", "--alg", "RS256", "--bits",
                          "2048", "--owner", "o", "--purpose", "id-token")
        self.assertRefused(p, 1, "3072", "production")

    def test_revoke_unknown_kid(self):
        p = self.inst.run("revoke", "--env", "production", "--reason", "x", "--", UNKNOWN_KID)
        self.assertRefused(p, 1, f"unknown kid {UNKNOWN_KID} in environment 'production'")
        p = self.inst.run("revoke", "--env", "production", "--reason", "x", "--", "not a kid!")
        self.assertRefused(p, 2, "invalid kid")
        p = self.inst.run("destroy", "--env", "production", "--", UNKNOWN_KID)
        self.assertRefused(p, 1, "unknown kid")
        p = self.inst.run("key", "show", "--", UNKNOWN_KID)
        self.assertRefused(p, 1, "unknown kid", UNKNOWN_KID)

    def test_revoke_and_state_changes_need_env_and_reason(self):
        p = self.inst.run("revoke", "--reason", "x", "--", self.active)
        self.assertRefused(p, 2, "missing --env")
        p = self.inst.run("revoke", "--env", "production", "--", self.active)
        self.assertRefused(p, 2, "missing --reason")
        p = self.inst.run("destroy", "--", self.active)
        self.assertRefused(p, 2, "missing --env")
        p = self.inst.run("key", "retire", "--", self.active)
        self.assertRefused(p, 2, "missing --env")

    def test_destroy_active_key(self):
        p = self.inst.run("destroy", "--env", "production", "--", self.active)
        self.assertRefused(p, 1, "active", "destroyed", "retired, revoked")
        # Nor can an active key leave the JWKS by hand, even with --force.
        p = self.inst.run("key", "remove", "--env", "production", "--force", "--", self.active)
        self.assertRefused(p, 1, "active", "removed")

    def test_rotate_now_needs_force(self):
        p = self.inst.run("rotate", "production/api", "--now")
        self.assertRefused(p, 2, "--force")
        p = self.inst.run("rotate", "production/api", "--now", "--now")
        self.assertRefused(p, 2, "--force")

    def test_pin_on_command_line_refused(self):
        pin = self.inst.pins["production"]
        for opt in ("--pin", "--so-pin", "--user-pin"):
            p = self.inst.run(*self.inst.sign_args("production/api"), f"{opt}={pin}")
            with self.subTest(opt=opt):
                self.assertRefused(p, 2, "never accepted on the command line")
        # A stray word is refused without being echoed: it could be a PIN.
        p = self.inst.run("token", "jwks", "--token", "keymgr-production", "--pin-source",
                          "file:" + self.inst.pin_file("production"), "s3cr3t-word")
        self.assertRefused(p, 2)
        self.assertNotIn("s3cr3t-word", p.stderr)

    def test_word_starting_with_dash(self):
        # A kid (43 base64url characters) is an argument even when it starts with '-';
        # '--' works too. Any other word starting with '-' is an option, with a hint.
        kid = "-" + "A" * 42
        p = self.inst.run("key", "show", kid, "--env", "production")
        self.assertRefused(p, 1, f"unknown kid {kid}")
        p = self.inst.run("key", "show", "--env", "production", "--", kid)
        self.assertRefused(p, 1, f"unknown kid {kid}")
        p = self.inst.run("key", "show", "-AAAA", "--env", "production")
        self.assertRefused(p, 2, "goes after '--'")

    def test_corrupt_config(self):
        inst = self.inst
        cases = {
            "syntax.yaml": ("version: 1\nenvironments:\n  production:\n"
                            "    token: { label: x\n  bad: [\n", r"syntax\.yaml:\d+:\d+: "),
            "unknown-key.yaml": (inst.config_text().replace("    store: ./staging.db",
                                                            "    stor: ./staging.db"),
                                 r"unknown-key\.yaml:\d+:\d+: .*stor"),
            "tab.yaml": ("version: 1\n\tenvironments: {}\n", r"tab\.yaml:\d+:\d+: "),
        }
        for name, (text, pattern) in cases.items():
            path = inst.write_config(name, text)
            for args in (["env", "list"], ["keyset", "list"], ["rotate", "production/api"]):
                p = inst.run(*args, config=path)
                with self.subTest(config=name, verb=args[0]):
                    self.assertRefused(p, 1)
                    self.assertRegex(p.stderr, pattern)
                    if name == "unknown-key.yaml" and args[0] != "rotate":
                        # The error is staging's own: a list over every environment leaves
                        # it out and says so (keymgr(1), A BROKEN CONFIGURATION).
                        self.assertIn("incomplete", p.stderr)
                        self.assertNotIn("staging", p.stdout)
                    else:
                        self.assertEqual(p.stdout, "")

    def test_unreadable_config(self):
        inst = self.inst
        missing = os.path.join(inst.dir, "missing.yaml")
        for path, needle in ((inst.dir, "not a regular file"),
                             (missing, "No such file or directory"),
                             (os.path.join(inst.dir, "pins"), "not a regular file")):
            for args in (["env", "list"], ["keyset", "list"], ["jwks", "production"]):
                p = inst.run(*args, config=path)
                with self.subTest(path=path, verb=args[0]):
                    self.assertRefused(p, 1, path, needle)
        p = inst.run("env", "list", config="")
        self.assertRefused(p, 2, "configuration")
        # KEYMGR_CONFIG is used when there is no -c; an empty one is ignored.
        env = dict(inst.env(), KEYMGR_CONFIG=missing)
        p = subprocess.run([fixture.KEYMGR, "env", "list"], env=env, capture_output=True,
                           text=True, cwd=inst.dir)
        self.assertRefused(p, 1, missing)
        env["KEYMGR_CONFIG"] = inst.config
        p = subprocess.run([fixture.KEYMGR, "env", "list", "--json"], env=env,
                           capture_output=True, text=True, cwd=inst.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        if os.geteuid() != 0:  # root reads a mode-000 file anyway
            path = inst.write_config("mode000.yaml")
            os.chmod(path, 0)
            p = inst.run("env", "list", config=path)
            self.assertRefused(p, 1, path)

    def test_store_from_the_future(self):
        inst = self.inst
        path = inst.store("staging")
        known = inst.db_rows("staging")["user_version"]
        rows = inst.db_rows("staging")
        c = sqlite3.connect(path)
        c.execute("PRAGMA user_version = 999")
        c.commit()
        c.close()
        digest = inst.file_digest(path)
        try:
            for args in (["keyset", "list"], ["keyset", "list", "staging"],
                         ["key", "list", "staging"], ["jwks", "staging"],
                         ["rotate", "staging/api"],
                         ["keyset", "create", "staging/new", "--alg", "ES256", "--owner", "o",
                          "--purpose", "id-token"]):
                p = inst.run(*args)
                with self.subTest(verb=" ".join(args[:2])):
                    self.assertRefused(p, 1, path, "schema version 999",
                                       f"versions up to {known}", "not changed")
                    self.assertEqual(inst.file_digest(path), digest)
            # Other environments are still usable.
            inst.run("keyset", "list", "production", ok=True)
            after = inst.db_rows("staging")
            self.assertEqual(after["user_version"], 999)
            after["user_version"] = known
            self.assertEqual(after, rows)
        finally:
            c = sqlite3.connect(path)
            c.execute(f"PRAGMA user_version = {known}")
            c.commit()
            c.close()
        inst.run("keyset", "list", "staging", ok=True)


if __name__ == "__main__":
    fixture.main()
