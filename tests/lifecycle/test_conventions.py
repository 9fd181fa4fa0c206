# SPDX-License-Identifier: Apache-2.0
"""One set of conventions across the keymgr command line (issue 14, item 5):

  - a mistyped command, verb or option is named with the closest known one ("did you
    mean"), an ambiguous abbreviation with its candidates, a value given to a flag is refused;
    never is an option's value echoed; nothing is changed by any of them;
  - `keymgr help VERB...` prints exactly what `keymgr VERB... --help` prints, for every verb;
  - an enumerated option given a bad value lists every valid value (and the closest);
  - every verb that prints takes --json (its --help says so), and every time in the JSON
    keymgr prints is RFC 3339 UTC ("2026-12-07T05:03:21Z");
  - `keymgr key show` prints the CKA_ID, the times in the order of the key's life (revoked
    before destroyed), and marks the standby;
  - `keymgr sign --json` says who signed (via token here; via daemon in signing.paths).

Usage: /usr/bin/python3 test_conventions.py PATH-TO-KEYMGR
"""
import base64
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402
from test_outputs import all_verbs  # noqa: E402

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
STATES = ["generated", "published", "active", "retired", "removed", "destroyed", "revoked"]
ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
        "EdDSA"]
# Members that hold a time, wherever they appear in keymgr's JSON.
TIME_MEMBERS = re.compile(r"^(at|time|now|since|until|started|last_tick|last_tick_ok|"
                          r"last_seen|next_wake|.*_at|.*_until)$")


def usage_line(p):
    """The first line of a usage error, without the "keymgr: " prefix."""
    return p.stderr.split("\n", 1)[0].removeprefix("keymgr: ")


def times_in(doc, path="$"):
    """(path, value) of every time member of a JSON document, and of every "times" object."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            p = f"{path}.{k}"
            if k == "times" and isinstance(v, dict):
                out += [(f"{p}.{s}", t) for s, t in v.items()]
            elif TIME_MEMBERS.match(k) and not isinstance(v, (dict, list)):
                out.append((p, v))
            else:
                out += times_in(v, p)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += times_in(v, f"{path}[{i}]")
    return out


class MistypedTest(InstallationTest):
    def test_commands_verbs_and_options(self):
        inst = self.inst
        inst.create_keyset("production/api", "access-token")
        inst.rotate("production/api")
        before = inst.snapshot()
        cases = [
            (["rotat", "production/api"], "unknown command 'rotat'; did you mean 'rotate'?"),
            (["key", "shwo", "x"], "unknown command 'shwo'; did you mean 'show'?"),
            (["audit", "lgo"], "unknown command 'lgo'; did you mean 'log'?"),
            (["Revoke"], "unknown command 'Revoke'; did you mean 'revoke'?"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["key", "list", "--sate", "active"],
             "unknown option '--sate'; did you mean '--state'?"),
            (["plan", "--horizn", "2d"], "unknown option '--horizn'; did you mean '--horizon'?"),
            (["rotate", "production/api", "--nwo", "--force"],
             "unknown option '--nwo'; did you mean '--now'?"),
            (["apply", "--dry-run=yes"], "option '--dry-run' takes no value"),
            (["audit", "log", "--k", "x"], "ambiguous option '--k': --kid, --keyset"),
            (["key", "list", "--stat"], "option '--state' needs a value"),
            (["revoke", "--env", "production", "--reasn", "x", "-" + "A" * 42],
             "unknown option '--reasn'; did you mean '--reason'?"),
        ]
        for args, message in cases:
            p = inst.run(*args)
            with self.subTest(args=args):
                self.assertRefused(p, 2)
                self.assertEqual(usage_line(p), message)
                self.assertEqual(p.stdout, "")
        # A mistyped option's value is never printed: it could be a secret.
        p = inst.run("token", "keygen", "--pasword=hunter2-not-a-pin")
        self.assertRefused(p, 2, "unknown option '--pasword'")
        self.assertNotIn("hunter2", p.stderr)
        self.assertUnchanged(before, "mistyped commands")
        # An unambiguous abbreviation works, its value included (as getopt_long takes it).
        keys = json.loads(inst.run("key", "list", "--stat", "active", "--json", ok=True).stdout)
        self.assertEqual([k["state"] for k in keys], ["active"])

    def test_enumerated_values_are_listed(self):
        inst = self.inst
        p = inst.run("key", "list", "--state", "activ")
        self.assertRefused(p, 2)
        self.assertEqual(usage_line(p), "unknown state 'activ': expected " + ", ".join(
            STATES[:-1]) + " or revoked; did you mean 'active'?")
        p = inst.run("sign", "production/api", "--claims", "{}", "--via", "dameon")
        self.assertRefused(p, 2)
        self.assertEqual(usage_line(p), "unknown --via 'dameon': expected auto, daemon or "
                                        "token; did you mean 'daemon'?")
        p = inst.run("token", "keygen", "--alg", "es256", config=False)
        self.assertRefused(p, 2)
        self.assertEqual(usage_line(p), "unknown algorithm 'es256': expected " + ", ".join(
            ALGS[:-1]) + " or EdDSA; did you mean 'ES256'?")
        p = inst.run("verify", "--jwks", "x", "--alg", "XYZ", "--iss", "i", "--aud", "a",
                     "--typ", "JWT", "-", config=False)
        self.assertRefused(p, 2, "expected " + ", ".join(ALGS[:-1]) + " or EdDSA")
        self.assertNotIn("did you mean", p.stderr)   # nothing close to XYZ


class HelpVerbTest(InstallationTest):
    def test_help_verb_is_verb_help(self):
        inst = self.inst
        top = inst.run("--help", config=False, ok=True)
        self.assertEqual(inst.run("help", config=False, ok=True).stdout, top.stdout)
        verbs = all_verbs(inst)[1:]
        self.assertGreater(len(verbs), 30)
        for verb in verbs:
            a = inst.run("help", *verb, config=False)
            b = inst.run(*verb, "--help", config=False)
            with self.subTest(verb=" ".join(verb)):
                self.assertEqual(a.returncode, 0, a.stderr)
                self.assertEqual(a.stderr, "")
                self.assertEqual(a.stdout, b.stdout)
                self.assertTrue(a.stdout.startswith("Usage: keymgr"))
        p = inst.run("help", "rotat", config=False)
        self.assertRefused(p, 2, "unknown command 'rotat'; did you mean 'rotate'?")
        p = inst.run("help", "key", "shwo", config=False)
        self.assertRefused(p, 2, "did you mean 'show'?")

    def test_every_printing_verb_takes_json(self):
        for verb in all_verbs(self.inst)[1:]:
            out = self.inst.run(*verb, "--help", config=False, ok=True).stdout
            if "\nCommands:\n" in out and verb != ["jwks"]:
                continue   # a group: its verbs are checked
            if verb == ["audit", "report"]:
                continue   # its --json comes with the auditor's report (issue 14, item 4)
            with self.subTest(verb=" ".join(verb)):
                self.assertIn("--json", out)


class KeyShowTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        inst = cls.inst
        # production/spare keeps a standby (policy standby: true, production's default too);
        # staging's key sets do not (staging's default).
        text = inst.config_text().replace(
            "      json-three:",
            "      spare: { issuer: \"%s\", audiences: [ api.example.com ],\n"
            "               policy: { standby: true } }\n"
            "      json-three:" % fixture.ISSUER["production"])
        inst.config = inst.write_config("keymgr.yaml", text)

    def show_text(self, kid, env="production"):
        return self.inst.run("key", "show", "--env", env, "--", kid, ok=True).stdout

    def field(self, text, name):
        m = re.search(rf"^{re.escape(name)} +(.*)$", text, re.M)
        self.assertIsNotNone(m, f"no {name!r} line in:\n{text}")
        return m.group(1)

    def test_standby_is_marked(self):
        inst = self.inst
        inst.create_keyset("production/spare", "id-token")
        active = inst.rotate("production/spare")["kid"]
        inst.run("apply", "production/spare", ok=True)   # the planner adds the standby
        published = inst.json("key", "list", "production/spare", "--state", "published")
        self.assertEqual(len(published), 1, published)
        standby = published[0]["kid"]
        self.assertEqual(self.field(self.show_text(standby), "state"), "published (standby)")
        self.assertIs(inst.key(standby, "production")["standby"], True)
        self.assertEqual(self.field(self.show_text(active), "state"), "active")
        self.assertIs(inst.key(active, "production")["standby"], False)

        # Without standby in the policy (staging's default), a published key is a successor,
        # not a standby; a requested rotation's successor says when it activates.
        inst.create_keyset("staging/plain", "access-token")
        inst.rotate("staging/plain")
        nxt = inst.rotate("staging/plain")
        successor = nxt["kid"]
        self.assertEqual(inst.key(successor, "staging")["state"], "published")
        self.assertEqual(self.field(self.show_text(successor, "staging"), "state"),
                         f"published (successor, activates at {nxt['activates_at']})")
        self.assertIs(inst.key(successor, "staging")["standby"], False)
        self.assertEqual(inst.key(successor, "staging")["activates_at"], nxt["activates_at"])
        # With standby, a rotation that schedules the standby makes the next one the standby.
        scheduled = inst.rotate("production/spare")
        self.assertEqual((scheduled["outcome"], scheduled["kid"]), ("scheduled", standby))
        self.assertIs(inst.key(standby, "production")["standby"], False)
        nxt_standby = [k["kid"] for k in inst.json("key", "list", "production/spare", "--state",
                                                   "published") if k["kid"] != standby]
        self.assertEqual(len(nxt_standby), 1)
        self.assertIs(inst.key(nxt_standby[0], "production")["standby"], True)

    def test_cka_id_and_times_in_life_order(self):
        inst = self.inst
        inst.create_keyset("production/gone", "logout-token")
        kid = inst.rotate("production/gone", now=True)["kid"]
        inst.run("revoke", "--env", "production", "--reason", "test", "--", kid, ok=True)
        inst.run("destroy", "--env", "production", "--", kid, ok=True)
        key = inst.key(kid, "production")
        text = self.show_text(kid)
        self.assertEqual(self.field(text, "CKA_ID"), key["token"]["cka_id"])
        lines = [ln.split() for ln in text.splitlines()]
        timeline = [(w[0], w[1]) for w in lines if len(w) == 2 and w[0] in STATES]
        self.assertEqual([s for s, _ in timeline],
                         ["generated", "published", "active", "revoked", "destroyed"], text)
        self.assertEqual([t for _, t in timeline], sorted(t for _, t in timeline))
        for state, t in timeline:
            self.assertEqual(key["times"][state], t)
        # --json lists them in the same order.
        self.assertEqual(list(key["times"]), [s for s, _ in timeline])


class JsonTest(InstallationTest):
    def test_sign_json_says_who_signed(self):
        inst = self.inst
        inst.create_keyset("production/api", "access-token")
        kid = inst.rotate("production/api", now=True)["kid"]
        args = inst.sign_args("production/api") + ["--via", "token"]
        plain = inst.run(*args, ok=True).stdout
        self.assertEqual(plain.count("\n"), 1)
        self.assertEqual(plain.count("."), 2)   # the JWT alone, as before
        out = inst.json(*args)
        self.assertEqual(list(out), ["jwt", "via", "env", "keyset", "kid", "alg", "typ",
                                     "expires_at"])
        self.assertEqual((out["via"], out["env"], out["keyset"], out["kid"], out["alg"],
                          out["typ"]), ("token", "production", "api", kid, "ES256", "at+jwt"))
        seg = out["jwt"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
        self.assertRegex(out["expires_at"], ISO)
        self.assertEqual(out["expires_at"], datetime.datetime.fromtimestamp(
            claims["exp"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        # A refusal prints nothing on stdout, --json or not.
        p = inst.run("sign", "production/api", "--claims", "{}", "--json", "--via", "token")
        self.assertRefused(p, 1)
        self.assertEqual(p.stdout, "")

    def test_every_time_is_rfc3339(self):
        inst = self.inst
        inst.create_keyset("staging/api", "access-token")
        first = inst.rotate("staging/api")["kid"]
        second = inst.rotate("staging/api")
        self.assertRegex(second["activates_at"], ISO)
        docs = {
            "rotate": second,
            "key list": inst.json("key", "list"),
            "key show": inst.key(first, "staging"),
            "keyset list": inst.json("keyset", "list"),
            "keyset show": inst.json("keyset", "show", "staging/api"),
            "plan": inst.json("plan", "staging", "--horizon", "60d"),
            "sign": inst.json(*inst.sign_args("staging/api"), "--via", "token"),
            "revoke": inst.json("revoke", "--env", "staging", "--reason", "t", "--",
                                second["kid"]),
        }
        seen = 0
        for verb, doc in docs.items():
            for path, value in times_in(doc):
                with self.subTest(verb=verb, member=path):
                    self.assertIsInstance(value, str)
                    self.assertRegex(value, ISO)
                    seen += 1
        self.assertGreater(seen, 20)
        self.assertTrue(any(p.endswith(".exposure_until") for p, _ in times_in(docs["revoke"])))
        self.assertTrue(any(p.endswith(".next_wake") for p, _ in times_in(docs["plan"])))


if __name__ == "__main__":
    fixture.main()
