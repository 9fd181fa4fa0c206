# SPDX-License-Identifier: Apache-2.0
"""The environment wall, driven through the keymgr CLI: a kid used in the wrong environment,
key set names that try to escape their environment, a process holding the wrong PIN, and
configurations whose environments share a token, store, HTTP path or snapshot file. Every
refusal must name what is wrong and change nothing (store rows, token objects, files).

Usage: /usr/bin/python3 test_separation.py PATH-TO-KEYMGR
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402

# Key set references that must never reach a store: each is a usage error (exit 2).
BAD_REFS = [
    "production/../staging",
    "production/a/b",
    "production/a\x01b",
    "production/a\nb",
    "production/a\x1b[31mb",
    "production/a b",
    "production/API",
    "PRODUCTION/api",
    "production/-api",
    "production/",
    "/api",
    "../production/api",
    "production/..",
    "production/" + "a" * 65,
]


class WallTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        for env in ("production", "staging"):
            inst.create_keyset(env + "/wall", "wall" if env == "production" else "id-token")
            inst.rotate(env + "/wall")
        cls.prod_kid = inst.json("key", "list", "production/wall", "--state",
                                 "active")[0]["kid"]
        # A second production key, retired then removed: destroyable with the right PIN.
        cls.removed = inst.rotate("production/wall", now=True)
        cls.removed_kid = cls.prod_kid
        cls.prod_kid = cls.removed["kid"]
        inst.json("key", "remove", "--env", "production", "--force", "--", cls.removed_kid)
        cls.removed_cka = inst.key(cls.removed_kid, "production")["token"]["cka_id"]

    def test_production_kid_refused_in_staging(self):
        inst = self.inst
        before = inst.snapshot()
        for kid in (self.prod_kid, self.removed_kid):
            for args in (["revoke", "--env", "staging", "--reason", "test", "--", kid],
                         ["destroy", "--env", "staging", "--", kid],
                         ["key", "show", "--env", "staging", "--", kid],
                         ["key", "retire", "--env", "staging", "--", kid],
                         ["key", "remove", "--env", "staging", "--force", "--", kid]):
                p = inst.run(*args)
                self.assertRefused(p, 1, kid, "'production'", "'staging'", "refused")
                self.assertEqual(p.stdout, "")
        self.assertUnchanged(before, "using a production kid with --env staging")
        # In its own environment the same kid is fine.
        self.assertEqual(inst.key(self.prod_kid, "production")["state"], "active")

    def test_keyset_names_cannot_escape_their_environment(self):
        inst = self.inst
        before = inst.snapshot()
        for ref in BAD_REFS:
            for args in (["keyset", "create", ref, "--alg", "ES256", "--owner", "o",
                          "--purpose", "names"],
                         ["keyset", "show", ref], ["rotate", ref],
                         ["rotate", ref, "--now", "--force"],
                         inst.sign_args(ref), ["key", "list", ref],
                         ["jwks", ref]):
                p = inst.run(*args)
                with self.subTest(ref=ref, verb=args[0]):
                    self.assertRefused(p, 2, "invalid")
                    self.assertIn("--help", p.stderr)
                    self.assertEqual(p.stdout, "")
                    # The name is echoed, but never a control character (terminal escapes).
                    self.assertIsNone(re.search(r"[\x00-\x08\x0b-\x1f\x7f]", p.stderr),
                                      repr(p.stderr))
        self.assertUnchanged(before, "malformed key set names")

    def test_staging_pin_cannot_sign_or_destroy_production_keys(self):
        inst = self.inst
        # A configuration where production's pin source is the staging PIN file: what a
        # process holding only the staging PIN could do.
        text = inst.config_text().replace("file:./pins/production.pin",
                                          "file:./pins/staging.pin")
        self.assertIn("file:./pins/staging.pin", text.split("staging:")[0])
        swapped = inst.write_config("swapped.yaml", text)
        before = inst.snapshot()

        p = inst.run(*inst.sign_args("production/wall"), config=swapped)
        self.assertRefused(p, 1, "production", "keymgr-production", "C_Login",
                           "PIN_INCORRECT")
        self.assertEqual(p.stdout, "")
        # Refused once, that PIN is not presented again (keymgr/core/pin_refusal.h).
        p = inst.run("destroy", "--env", "production", "--", self.removed_kid, config=swapped)
        self.assertRefused(p, 1, "production", "C_Login", "PIN_INCORRECT",
                           "refused by the token at", "keymgr env login production")
        p = inst.run("rotate", "production/wall", config=swapped)
        self.assertRefused(p, 1, "production", "C_Login")
        p = inst.run("rotate", "production/wall", "--now", "--force", config=swapped)
        self.assertRefused(p, 1, "production", "C_Login")
        # (check_output() already proved that no PIN appears in any of these outputs.)
        # The record of the refusal is the one file they leave (for the staging PIN file).
        record = os.path.join(inst.dir, "production.db.pin-refused")
        self.assertTrue(os.path.exists(record), "no record of the refused PIN")
        os.remove(record)
        self.assertUnchanged(before, "operations with the staging PIN")
        self.assertEqual(inst.key(self.removed_kid, "production")["state"], "removed")
        self.assertIn(self.removed_cka, inst.token_ids("production"))

        # What such a process CAN do is read the production store (no token involved):
        # listing is a store read, protected by the store file's mode, not by the PIN.
        kids = [k["kid"] for k in inst.json("key", "list", "production/wall",
                                            config=swapped)]
        self.assertIn(self.prod_kid, kids)
        self.assertEqual(oct(os.stat(inst.store("production")).st_mode & 0o777), "0o600")

        # The staging token itself still works with its own PIN in the same configuration.
        p = inst.run(*inst.sign_args("staging/wall"), config=swapped, ok=True)
        self.assertEqual(p.stdout.count("."), 2)

    def test_config_with_shared_resources_is_refused(self):
        inst = self.inst
        base = inst.config_text()
        cases = {
            "token": ("label: keymgr-staging", "label: keymgr-production", "share a token"),
            "store": ("store: ./staging.db", "store: ./production.db", "share a file"),
            "http path": ("path: /staging", "path: /production", "share an HTTP path"),
            "snapshot": ("path: /staging",
                         "path: /staging\n      snapshots: [ ./jwks-production.json ]",
                         "share a file"),
        }
        before = inst.snapshot()
        for what, (old, new, needle) in cases.items():
            self.assertEqual(base.count(old), 1, old)
            path = inst.write_config(f"shared-{what.replace(' ', '-')}.yaml",
                                     base.replace(old, new))
            name = os.path.basename(path)
            for args in (["env", "list"], ["keyset", "list"], ["jwks", "staging"],
                         ["rotate", "staging/wall"]):
                p = inst.run(*args, config=path)
                with self.subTest(shared=what, verb=args[0]):
                    self.assertRefused(p, 1, needle, "'staging'", "'production'")
                    self.assertRegex(p.stderr, re.escape(name) + r":\d+:\d+: ")
                    if args[0] in ("env", "keyset"):
                        # Every environment: both sides of the wall are left out, the rest
                        # listed (keymgr(1), A BROKEN CONFIGURATION), and exit 1.
                        self.assertIn("incomplete", p.stderr)
                        self.assertNotIn("staging", p.stdout)
                        self.assertNotIn("production", p.stdout)
                    else:
                        self.assertEqual(p.stdout, "")
        self.assertUnchanged(before, "configurations that break the wall")

    def test_store_of_another_environment_is_refused(self):
        inst = self.inst
        # production's store path pointing at the staging store (staging left out).
        text = inst.config_text()
        text = text.replace("store: ./production.db", "store: ./staging.db")
        text = text[:text.index("  staging:")] + text[text.index("  development:"):]
        path = inst.write_config("wrong-store.yaml", text)
        before = inst.snapshot()
        for args in (["keyset", "list", "production"], ["key", "list", "production"],
                     ["jwks", "production"], ["rotate", "production/wall"]):
            p = inst.run(*args, config=path)
            self.assertRefused(p, 1, "staging", "production")
        self.assertUnchanged(before, "opening staging's store as production")


if __name__ == "__main__":
    fixture.main()
