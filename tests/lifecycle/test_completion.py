# SPDX-License-Identifier: Apache-2.0
"""The bash completion (dist/keymgr.bash-completion.in, configured into the build directory as
dist/CLI_NAME), driven by bash itself: the file is sourced, `complete -p` must name its
function, and the function is called with COMP_WORDS/COMP_CWORD set as bash sets them.

  - every command and verb that `keymgr --help` and each group's --help list is offered;
  - for every verb, the options its --help names are offered, and every option offered is
    one keymgr accepts (run it: no "unknown option");
  - enumerated values: the states, algorithms, --via values and each verb's --format values
    offered are exactly those the program lists when it refuses a bad value;
  - ENV and ENV/NAME come from the configuration given with -c, --config=FILE or
    $KEYMGR_CONFIG; a broken configuration completes nothing (and prints nothing);
  - `keymgr help VERB` completes verbs; after the argument of a verb, nothing is offered.

Usage: /usr/bin/python3 test_completion.py PATH-TO-KEYMGR PATH-TO-COMPLETION-FILE
"""
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import InstallationTest  # noqa: E402
from test_outputs import all_verbs  # noqa: E402

COMPLETION = None  # set in __main__
REFUSED = {"--pin", "--so-pin", "--user-pin"}   # named in help texts only to refuse them
# Options a help text names for a neighbouring verb: `jwks --help` shows `jwks show`'s usage.
ELSEWHERE = {("jwks",): {"--serial", "--at"}}


def name():
    return os.path.basename(fixture.KEYMGR)


class CompletionTest(InstallationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inst.create_keyset("production/api", "access-token")
        cls.inst.create_keyset("staging/api", "access-token")

    def bash(self, script, env=None):
        e = self.inst.env()
        e["PATH"] = os.path.dirname(fixture.KEYMGR) + ":" + e.get("PATH", "")
        e.update(env or {})
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=e,
                           cwd=self.inst.dir, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"bash failed: {p.stderr}")
        self.assertEqual(p.stderr, "", "the completion printed on stderr")
        return p.stdout

    def complete(self, *words, env=None):
        """The completions bash would offer for `keymgr WORDS...` (the last word is the one
        being completed; "" for a new word)."""
        words = [name()] + list(words)
        cword = len(words) - 1
        script = (f"source {shlex.quote(COMPLETION)}\n"
                  f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
                  f"COMP_CWORD={cword}\n"
                  f"COMP_LINE={shlex.quote(' '.join(words))}\nCOMP_POINT=${{#COMP_LINE}}\n"
                  f"_keymgr {shlex.quote(words[0])} {shlex.quote(words[-1])} "
                  f"{shlex.quote(words[-2])}\n"
                  "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
        return sorted(w for w in self.bash(script, env).split("\n") if w)

    def help_of(self, verb):
        return self.inst.run(*verb, "--help", config=False, ok=True).stdout

    def test_registered_for_the_installed_name(self):
        out = self.bash(f"source {shlex.quote(COMPLETION)}\ncomplete -p {shlex.quote(name())}")
        self.assertEqual(out.strip(), f"complete -F _keymgr {name()}")

    def test_commands_and_verbs(self):
        for verb in all_verbs(self.inst):
            out = self.help_of(verb)
            if "\nCommands:\n" not in out:
                continue
            section = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
            listed = sorted(re.findall(r"^  ([a-z][a-z-]*) ", section, re.M))
            offered = self.complete(*verb, "")
            if verb == ["jwks"]:   # jwks ENV[/NAME] | history | show
                offered = [w for w in offered if w in ("history", "show")]
            with self.subTest(verb=" ".join(verb)):
                self.assertEqual(offered, sorted(listed + (["help"] if verb == [] else [])))
        self.assertEqual(self.complete("ro"), ["rotate"])
        self.assertEqual(self.complete("key", "s"), ["show"])
        self.assertEqual(self.complete("help", "ke"), ["key", "keyset"])
        self.assertEqual(self.complete("help", "token", ""), ["info", "init", "jwks", "keygen", "sign"])

    def test_options_of_every_verb(self):
        leaves = [v for v in all_verbs(self.inst)[1:]
                  if "\nCommands:\n" not in self.help_of(v) or v == ["jwks"]]
        self.assertGreater(len(leaves), 30)
        missing_config = os.path.join(self.inst.dir, "no-such.yaml")
        for verb in leaves:
            text = self.help_of(verb)
            named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text)) - REFUSED - {"--help"}
            named -= ELSEWHERE.get(tuple(verb), set())
            offered = set(self.complete(*verb, "--"))
            with self.subTest(verb=" ".join(verb)):
                self.assertIn("--help", offered)
                self.assertEqual(sorted(named - offered), [], "named by --help, not offered")
                self.assertIn("--json", offered)
            for opt in sorted(offered):
                # Accepted: whatever else is wrong (no configuration, no ENV), not the option.
                p = self.inst.run(*verb, opt, "x", config=missing_config)
                with self.subTest(verb=" ".join(verb), option=opt):
                    self.assertNotIn("unknown option", p.stderr)
                    self.assertNotIn("ambiguous option", p.stderr)
                    self.assertNotIn("takes no value", p.stderr)

    def refused_values(self, *args):
        """The values keymgr lists when it refuses a bad one ("expected a, b or c")."""
        p = self.inst.run(*args, config=False)
        self.assertEqual(p.returncode, 2, p.stderr)
        m = re.search(r"expected ([^;\n]+)", p.stderr)
        self.assertIsNotNone(m, p.stderr)
        return sorted(re.split(r", | or ", m.group(1)))

    def test_enumerated_values(self):
        states = self.refused_values("key", "list", "--state", "bogus")
        self.assertEqual(len(states), 7)
        self.assertEqual(self.complete("key", "list", "--state", ""), states)
        self.assertEqual(self.complete("key", "list", "--state", "a"), ["active"])
        algs = self.refused_values("token", "keygen", "--alg", "bogus")
        self.assertEqual(self.complete("token", "keygen", "--alg", ""), algs)
        self.assertEqual(self.complete("verify", "--alg", "E"),
                         [a for a in algs if a.startswith("E")])
        vias = self.refused_values("sign", "dev/api", "--claims", "{}", "--via", "bogus")
        self.assertEqual(self.complete("sign", "--via", ""), vias)
        self.assertEqual(self.complete("keyset", "create", "--bits", ""),
                         ["2048", "3072", "4096"])
        # --format: each verb's own formats, as it lists them when it refuses one
        for verb in (("plan",), ("audit", "report")):
            p = self.inst.run(*verb, "--format", "bogus", config=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            formats = sorted(re.split(r", | or ", re.search(r"must be ([^;\n]+)",
                                                             p.stderr).group(1)))
            self.assertEqual(self.complete(*verb, "--format", ""), formats)
            self.assertIn("html", formats)
        # The "--opt=value" form: bash splits it at '='.
        self.assertEqual(self.complete("key", "list", "--state", "=", "ret"), ["retired"])
        self.assertEqual(self.complete("key", "list", "--state", "="), states)

    def test_environments_and_key_sets_from_the_configuration(self):
        cfg = self.inst.config
        envs = sorted(fixture.ENVS)
        both = ["production/api", "staging/api"]
        self.assertEqual(self.complete("-c", cfg, "rotate", ""), both)
        self.assertEqual(self.complete("-c", cfg, "rotate", "prod"), ["production/api"])
        self.assertEqual(self.complete("--config", "=", cfg, "sign", "st"), ["staging/api"])
        self.assertEqual(self.complete("-c", cfg, "keyset", "list", ""), envs)
        self.assertEqual(self.complete("-c", cfg, "key", "show", "--env", ""), envs)
        self.assertEqual(self.complete("-c", cfg, "plan", ""), sorted(envs + both))
        # $KEYMGR_CONFIG, as keymgr itself reads it.
        self.assertEqual(self.complete("rotate", "", env={"KEYMGR_CONFIG": cfg}), both)
        # After the argument, nothing; an option still completes.
        self.assertEqual(self.complete("-c", cfg, "rotate", "production/api", ""), [])
        self.assertEqual(self.complete("-c", cfg, "rotate", "production/api", "--n"), ["--now"])
        # A broken or missing configuration: nothing offered, nothing printed (bash() checks
        # stderr), and the verbs still complete.
        broken = self.inst.write_config("broken.yaml", "version: 1\nenvironments: [\n")
        self.assertEqual(self.complete("-c", broken, "rotate", ""), [])
        self.assertEqual(self.complete("-c", broken, "rot"), ["rotate"])
        self.assertEqual(self.complete("-c", os.path.join(self.inst.dir, "none.yaml"),
                                       "keyset", "list", ""), [])

    def test_files_for_file_options(self):
        offered = self.complete("-c", self.inst.config, "jwks", "production", "--output",
                                os.path.join(self.inst.dir, "keymgr.y"))
        self.assertEqual(offered, [os.path.join(self.inst.dir, "keymgr.yaml")])
        self.assertEqual(self.complete("-c", os.path.join(self.inst.dir, "keymgr.y")),
                         [os.path.join(self.inst.dir, "keymgr.yaml")])


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} PATH-TO-KEYMGR PATH-TO-COMPLETION [unittest options]",
              file=sys.stderr)
        sys.exit(2)
    COMPLETION = os.path.abspath(sys.argv.pop(2))
    fixture.main()
