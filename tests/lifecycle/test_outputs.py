# SPDX-License-Identifier: Apache-2.0
"""What the keymgr CLI prints: the --json output of every listing verb (parseable, the same
members every time, identical across runs), --help on every verb, `jwks --output`, and the
man page docs/keymgr.1 against --help (every verb and every option documented).

Usage: /usr/bin/python3 test_outputs.py PATH-TO-KEYMGR
"""
import json
import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402

MAN_PAGE = os.path.join(fixture.HERE, "..", "..", "docs", "keymgr.1")

KEYSET_MEMBERS = {"env", "name", "alg", "owner", "purpose", "description", "labels",
                  "created_at", "created_by"}
KEY_MEMBERS = {"kid", "keyset", "alg", "state", "owner", "purpose", "token", "times",
               "pending", "env"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# Verbs every version of this test knows; more are found from the "Commands:" sections.
KNOWN_VERBS = [
    ["env", "list"], ["keyset", "create"], ["keyset", "list"], ["keyset", "show"],
    ["keyset", "set-owner"], ["keyset", "set-purpose"], ["key", "list"], ["key", "show"], ["key", "retire"],
    ["key", "remove"], ["rotate"], ["revoke"], ["destroy"], ["jwks"], ["sign"],
    ["token", "init"], ["token", "keygen"], ["token", "jwks"], ["token", "sign"],
]


def all_verbs(inst):
    """[] and every command path, from `keymgr --help` down through each group's --help."""
    found, todo = [], [[]]
    while todo:
        verb = todo.pop(0)
        found.append(verb)
        out = inst.run(*verb, "--help", config=False).stdout
        if "\nCommands:\n" not in out:
            continue
        section = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
        for line in section.splitlines():
            m = re.match(r"^  ([a-z][a-z-]*) ", line)
            if m:
                todo.append(verb + [m.group(1)])
    return found


class JsonOutputTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        inst.json("keyset", "create", "production/json-one", "--alg", "ES256", "--owner",
                  "team-a", "--purpose", "json-one", "--description", "first",
                  "--label", "tier=gold", "--label", "app=api", "--no-key")
        inst.create_keyset("production/json-two", "json-two", alg="EdDSA")
        inst.create_keyset("staging/api", "access-token", alg="ES384")
        for ref in ("production/json-one", "production/json-two", "staging/api"):
            inst.rotate(ref)
        inst.rotate("production/json-one")  # a published successor
        inst.run("keyset", "set-owner", "production/json-one", "team-b", "--reason",
                 "reorganisation", ok=True)

    def test_kid_starting_with_dash_is_an_argument(self):
        # 1 kid in 64 starts with '-': it must work without '--' (no option looks like it).
        kid = "-" + "A" * 42
        p = self.inst.run("key", "show", kid, "--env", "production")
        self.assertRefused(p, 1, "unknown kid " + kid)
        p = self.inst.run("revoke", kid, "--env", "production", "--reason", "x")
        self.assertRefused(p, 1, "unknown kid " + kid)

    def test_purpose_change_is_recorded_and_stops_the_old_key(self):
        inst = self.inst
        inst.create_keyset("production/json-three", "access-token")
        kid = inst.rotate("production/json-three")["kid"]
        p = inst.run("keyset", "set-purpose", "production/json-three", "Bad Purpose",
                     "--reason", "x")
        self.assertRefused(p, 2, "unknown purpose")
        p = inst.run("keyset", "set-purpose", "production/json-three", "id-token")
        self.assertRefused(p, 2, "missing --reason")
        p = inst.run("keyset", "set-purpose", "production/json-three", "id-token",
                     "--reason", "now signs ID tokens", ok=True)
        self.assertIn(f"the active key {kid} was made for purpose 'access-token'", p.stderr)
        show = inst.json("keyset", "show", "production/json-three")
        self.assertEqual(show["purpose"], "id-token")
        self.assertEqual([(h["field"], h["old"], h["new"], h["reason"]) for h in show["history"]],
                         [("purpose", "access-token", "id-token", "now signs ID tokens")])
        # The key made for access tokens does not sign ID tokens.
        p = inst.run(*inst.sign_args("production/json-three"))
        self.assertRefused(p, 1, f"the active key {kid}", "was made for access-token tokens",
                           "rotate it first")

    def twice(self, *args):
        """Runs a --json verb twice: the outputs must be byte-identical."""
        args = list(args)
        args.insert(args.index("--") if "--" in args else len(args), "--json")
        a = self.inst.run(*args, ok=True).stdout
        b = self.inst.run(*args, ok=True).stdout
        self.assertEqual(a, b, f"{args}: output differs between two runs")
        self.assertTrue(a.endswith("\n") and a.count("\n") == 1, f"{args}: not one line")
        return json.loads(a)

    def check_key(self, k):
        self.assertEqual(set(k) - {"rsa_bits", "revoke_reason", "activates_at"}, KEY_MEMBERS)
        self.assertEqual(set(k["token"]), {"label", "serial", "cka_id"})
        self.assertRegex(k["token"]["cka_id"], r"^[0-9a-f]{40}$")
        self.assertRegex(k["kid"], r"^[A-Za-z0-9_-]{43}$")
        self.assertIsInstance(k["pending"], bool)
        for state, t in k["times"].items():
            self.assertIn(state, ("generated", "published", "active", "retired", "removed",
                                  "destroyed", "revoked"))
            self.assertRegex(t, ISO)
        self.assertIn(k["state"], k["times"])

    def test_env_list_json(self):
        envs = self.twice("env", "list")
        self.assertEqual([e["name"] for e in envs], list(fixture.ENVS))
        for e in envs:
            self.assertEqual(set(e), {"name", "token", "store", "http_path"})
            self.assertEqual(e["token"]["label"], "keymgr-" + e["name"])
            self.assertEqual(e["token"]["module"], fixture.MODULE)
            # The kind of pin source only: not even the file's path.
            self.assertEqual(e["token"]["pin_source"], "file")
            self.assertEqual(e["store"], self.inst.store(e["name"]))
            self.assertEqual(e["http_path"], "/" + e["name"])

    def test_keyset_list_json(self):
        all_sets = self.twice("keyset", "list")
        self.assertEqual([(k["env"], k["name"]) for k in all_sets],
                         [("production", "json-one"), ("production", "json-two"),
                          ("staging", "api")])
        for ks in all_sets:
            self.assertEqual(set(ks) - {"rsa_bits"}, KEYSET_MEMBERS)
            self.assertRegex(ks["created_at"], ISO)
        one = all_sets[0]
        self.assertEqual((one["owner"], one["description"], one["labels"]),
                         ("team-b", "first", {"app": "api", "tier": "gold"}))
        self.assertEqual([k["name"] for k in self.twice("keyset", "list", "staging")], ["api"])
        self.assertEqual([k["name"] for k in self.twice("keyset", "list", "--owner",
                                                        "team-b")], ["json-one"])
        self.assertEqual([k["name"] for k in self.twice("keyset", "list", "--purpose",
                                                        "json-two")], ["json-two"])
        self.assertEqual(self.twice("keyset", "list", "development"), [])

    def test_keyset_show_json(self):
        ks = self.twice("keyset", "show", "production/json-one")
        self.assertEqual(set(ks), KEYSET_MEMBERS | {"keys", "history", "can_sign",
                                                    "signing_gaps", "exceptions"})
        # SoftHSM has no recorded exception (tests/hsm checks tpm2-pkcs11's).
        self.assertEqual(ks["exceptions"], [])
        # json-one is configured without an issuer, audiences or signers.
        self.assertEqual((ks["can_sign"], ks["signing_gaps"]),
                         (False, ["issuer", "audiences", "signers"]))
        # active, the standby scheduled as the successor, the next standby
        self.assertEqual([k["state"] for k in ks["keys"]], ["active", "published", "published"])
        for k in ks["keys"]:
            self.check_key(dict(k, env="production"))
        self.assertEqual(len(ks["history"]), 1)
        h = ks["history"][0]
        self.assertEqual(set(h), {"field", "old", "new", "who", "at", "reason"})
        self.assertEqual((h["field"], h["old"], h["new"], h["reason"]),
                         ("owner", "team-a", "team-b", "reorganisation"))
        self.assertRegex(h["at"], ISO)

    def test_key_list_json(self):
        keys = self.twice("key", "list")
        # production keeps a standby: json-one has its active key, the standby its rotation
        # made the successor and the next standby; json-two its active key and a standby
        self.assertEqual(len(keys), 6)
        for k in keys:
            self.check_key(k)
        self.assertEqual(sorted((k["env"], k["keyset"], k["state"]) for k in keys),
                         [("production", "json-one", "active"),
                          ("production", "json-one", "published"),
                          ("production", "json-one", "published"),
                          ("production", "json-two", "active"),
                          ("production", "json-two", "published"),
                          ("staging", "api", "active")])
        self.assertEqual(len(self.twice("key", "list", "production")), 5)
        self.assertEqual(len(self.twice("key", "list", "production/json-one", "--state",
                                        "published")), 2)
        self.assertEqual(len(self.twice("key", "list", "--state", "active", "--state",
                                        "published")), 6)
        self.assertEqual(len(self.twice("key", "list", "--owner", "team-a")), 3)
        self.assertEqual(self.twice("key", "list", "--state", "destroyed"), [])

    def test_key_show_json(self):
        for k in self.twice("key", "list"):
            shown = self.twice("key", "show", "--env", k["env"], "--", k["kid"])
            # key show also says whether the key is its key set's standby.
            self.assertIsInstance(shown.pop("standby"), bool)
            self.check_key(shown)
            self.assertEqual(shown, k)
            shown = self.twice("key", "show", "--", k["kid"])
            shown.pop("standby")
            self.assertEqual(shown, k)
        one = self.twice("key", "list", "production/json-one")
        # owner and purpose are those at creation: the owner change came later.
        self.assertEqual({k["owner"] for k in one}, {"team-a"})

    def test_text_outputs_have_headers(self):
        for args, header in ((["env", "list"], "ENVIRONMENT"), (["keyset", "list"], "KEY SET"),
                             (["key", "list"], "KID")):
            out = self.inst.run(*args, ok=True).stdout
            self.assertTrue(out.startswith(header), out)


class ApplyOutputTest(InstallationTest):
    """keymgr apply: its --json members, "nothing due" only when nothing failed, and a key set
    that cannot be planned named on stderr, in --json's "errors", with exit 1."""

    def test_apply_outputs(self):
        inst = self.inst
        inst.create_keyset("staging/apply", "access-token")
        inst.rotate("staging/apply", now=True)   # an active key, nothing due for a while
        doc = inst.json("apply", "staging/apply")
        self.assertEqual(doc, {"actions": [], "applied": 0, "failed": 0, "errors": [],
                               "dry_run": False})
        p = inst.run("apply", "staging/apply", ok=True)
        self.assertEqual(p.stdout, "nothing due\n")

        before = inst.snapshot()
        p = inst.run("apply", "staging/nope", rc=1)
        self.assertRefused(p, 1, "unknown key set staging/nope")
        self.assertEqual(p.stdout, "")   # not "nothing due"
        p = inst.run("apply", "staging/nope", "--json", rc=1)
        self.assertRefused(p, 1, "unknown key set staging/nope")
        self.assertEqual(json.loads(p.stdout),
                         {"actions": [], "applied": 0, "failed": 0, "dry_run": False,
                          "errors": [{"env": "staging", "keyset": "nope",
                                      "error": "unknown key set staging/nope"}]})
        p = inst.run("apply", "nowhere", "--json", rc=1)   # no such environment
        self.assertRefused(p, 1, "nowhere")
        self.assertEqual(p.stdout, "")
        self.assertUnchanged(before, "keymgr apply with bad targets")


class HelpTest(InstallationTest):
    def test_help_on_every_verb(self):
        verbs = all_verbs(self.inst)
        for v in KNOWN_VERBS:
            self.assertIn(v, verbs)
        print(f"  {len(verbs)} commands and groups", flush=True)
        for verb in verbs:
            for flag in ("--help", "-h"):
                p = self.inst.run(*verb, flag, config=False)
                with self.subTest(verb=" ".join(verb), flag=flag):
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertTrue(p.stdout.startswith("Usage: keymgr"), p.stdout[:80])
                    self.assertEqual(p.stderr, "")
        # No command at all is a usage error on stderr.
        p = self.inst.run(config=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("Usage: keymgr", p.stderr)
        p = self.inst.run("--version", config=False)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^keymgr \d+\.\d+\.\d+\n$")

    def test_man_page_matches_help(self):
        with open(MAN_PAGE) as f:
            man = f.read()
        # roff escapes: "\-" is a '-' in the rendered page.
        text = man.replace("\\-", "-").replace("\\(em", "-")
        for verb in all_verbs(self.inst)[1:]:
            out = self.inst.run(*verb, "--help", config=False).stdout
            with self.subTest(verb=" ".join(verb)):
                self.assertTrue(" ".join(verb) in text, "verb missing from keymgr.1")
            for opt in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", out))):
                with self.subTest(verb=" ".join(verb), option=opt):
                    self.assertTrue(opt in text, "option missing from keymgr.1")
        for word in ("KEYMGR_CONFIG", "SOFTHSM2_CONF", "KEYMGR_MODULE", "KEYMGR_TOKEN",
                     "KEYMGR_PIN_SOURCE", "EXIT STATUS", "ENVIRONMENT", "FILES", "SECURITY",
                     "EXAMPLES", "keymgr.yaml"):
            self.assertIn(word, text)


class JwksOutputTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst.create_keyset("development/api", "access-token")
        cls.inst.rotate("development/api")

    def test_jwks_output_file(self):
        inst = self.inst
        outdir = os.path.join(inst.dir, "public")
        os.mkdir(outdir, 0o755)
        path = os.path.join(outdir, "jwks.json")
        expected = inst.run("jwks", "development", ok=True).stdout
        # Whatever the umask, the file is 0644: web servers must read it.
        p = inst.run("jwks", "development", "--output", path, ok=True, umask=0o077)
        self.assertEqual(p.stdout, "")
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        with open(path) as f:
            got = f.read()
        self.assertEqual(json.loads(got), json.loads(expected))
        self.assertEqual(os.listdir(outdir), ["jwks.json"])  # no temporary file left
        # Rewriting replaces the file (a new inode: readers never see a torn file).
        inst.rotate("development/api", now=True)
        inst.run("jwks", "development", "--output", path, ok=True)
        self.assertNotEqual(os.stat(path).st_ino, st.st_ino)
        with open(path) as f:
            self.assertEqual(len(json.load(f)["keys"]), 2)
        self.assertEqual(os.listdir(outdir), ["jwks.json"])
        # One key set only.
        one = os.path.join(outdir, "api.json")
        inst.run("jwks", "development/api", "--output", one, ok=True)
        self.assertEqual(sorted(os.listdir(outdir)), ["api.json", "jwks.json"])

    def test_jwks_output_unwritable(self):
        inst = self.inst
        bad = os.path.join(inst.dir, "no-such-dir", "jwks.json")
        p = inst.run("jwks", "development", "--output", bad)
        self.assertRefused(p, 1, bad)
        self.assertFalse(os.path.exists(os.path.dirname(bad)))
        # A directory in the way: refused, the directory and its parent are left as they were.
        target = os.path.join(inst.dir, "adir")
        os.mkdir(target)
        before = sorted(os.listdir(inst.dir))
        p = inst.run("jwks", "development", "--output", target)
        self.assertRefused(p, 1, target)
        self.assertEqual(sorted(os.listdir(inst.dir)), before)
        self.assertTrue(os.path.isdir(target))


if __name__ == "__main__":
    fixture.main()
