# SPDX-License-Identifier: Apache-2.0
"""keymgr verify against the hand-made hostile corpus (tests/verify/corpus/, written by
make_corpus.py), one test per token, plus its command-line contract: usage errors, leeway,
--at, TOKEN as an argument or on stdin.

Usage: /usr/bin/python3 test_corpus.py PATH-TO-KEYMGR [unittest options]
"""
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
KEYMGR = None
with open(os.path.join(CORPUS, "manifest.json")) as f:
    MANIFEST = json.load(f)


def verify(token, *extra, alg=None, typ=None, aud=None, iss=None, jwks=None, positional=False):
    args = [KEYMGR, "verify", "--jwks", jwks or os.path.join(CORPUS, MANIFEST["jwks"]),
            "--alg", alg or MANIFEST["alg"], "--iss", iss or MANIFEST["iss"],
            "--aud", aud or MANIFEST["aud"], "--typ", typ or MANIFEST["typ"], *extra]
    args.append(token if positional else "-")
    p = subprocess.run(args, input=None if positional else token, capture_output=True,
                       text=True, timeout=60)
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in p.stderr, p.stderr
    return p


def read(name):
    with open(os.path.join(CORPUS, name + ".jwt")) as f:
        return f.read()


class CorpusTest(unittest.TestCase):
    """One test per corpus token (methods added below from the manifest)."""

    def check_entry(self, e):
        p = verify(read(e["name"]), alg=e.get("alg"), typ=e.get("typ"), aud=e.get("aud"))
        self.assertEqual(p.returncode, e["expect"],
                         f"{e['name']} ({e['why']}): exit {p.returncode}: {p.stderr.strip()}")
        if e["expect"] == 0:
            claims = json.loads(p.stdout)
            self.assertEqual(claims["iss"], MANIFEST["iss"])
            self.assertEqual(p.stderr, "")
            return
        self.assertEqual(p.stdout, "", "a refused token printed claims")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"reason is not one line: {p.stderr!r}")
        self.assertTrue(lines[0].startswith("keymgr: token refused: "), lines[0])
        self.assertIn(e["reason"], lines[0], f"{e['name']} ({e['why']})")


def _make(entry):
    def test(self):
        self.check_entry(entry)
    test.__doc__ = f"{entry['name']}: {entry['why']}"
    return test


for _e in MANIFEST["tokens"]:
    setattr(CorpusTest, "test_corpus_" + _e["name"].replace("-", "_"), _make(_e))


class CommandLineTest(unittest.TestCase):
    def test_corpus_covers_the_required_cases(self):
        names = {e["name"] for e in MANIFEST["tokens"]}
        for required in ("alg-none", "hs256-public-key", "jku", "x5u", "kid-path", "kid-sql",
                         "expired", "not-yet-valid", "wrong-typ", "truncated-two-segments",
                         "bad-base64-padding", "duplicate-header-alg"):
            self.assertIn(required, names)
        self.assertGreater(sum(1 for e in MANIFEST["tokens"] if e["expect"] == 0), 0)

    def test_token_as_argument(self):
        p = verify(read("valid-es256").strip(), positional=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = verify(read("expired").strip(), positional=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("exp: expired", p.stderr)

    def test_leeway_and_at(self):
        tok = read("valid-es256")  # exp 4102444800
        exp = 4102444800
        self.assertEqual(verify(tok, "--at", f"@{exp - 1}", "--leeway", "0s").returncode, 0)
        p = verify(tok, "--at", f"@{exp}", "--leeway", "0s")
        self.assertEqual(p.returncode, 1)
        self.assertIn("exp: expired at 2100-01-01T00:00:00Z", p.stderr)
        self.assertEqual(verify(tok, "--at", f"@{exp + 29}", "--leeway", "30s").returncode, 0)
        self.assertEqual(verify(tok, "--at", f"@{exp + 30}", "--leeway", "30s").returncode, 1)
        # nbf/iat 1700000000: before that, not yet valid, even with the default leeway.
        p = verify(tok, "--at", "@1699999000")
        self.assertEqual(p.returncode, 1)
        self.assertIn("nbf: not valid before", p.stderr)
        self.assertEqual(verify(tok, "--at", "@1699999980").returncode, 0)  # within 30s

    def test_max_ttl(self):
        tok = read("valid-es256")  # iat 1700000000, exp 4102444800
        p = verify(tok, "--max-ttl", "1h")
        self.assertEqual(p.returncode, 1)
        self.assertIn("token refused: lifetime: exp - iat is 2402444800 s, more than the "
                      "3600 s allowed", p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertEqual(verify(tok, "--max-ttl", "27807d").returncode, 0)   # 2402524800 s
        self.assertEqual(verify(tok, "--max-ttl", "27806d").returncode, 1)   # 2402438400 s
        self.assertEqual(verify(tok).returncode, 0)   # not checked without --max-ttl
        for bad in ("0s", "soon"):
            with self.subTest(max_ttl=bad):
                p = verify(tok, "--max-ttl", bad)
                self.assertEqual(p.returncode, 2)
                self.assertIn("--max-ttl", p.stderr)

    def test_usage_errors(self):
        tok = read("valid-es256")
        cases = [
            (["--alg", "none"], "--alg none is refused"),
            (["--alg", "HS256"], "--alg HS256 is refused"),
            (["--alg", "ES999"], "unknown --alg"),
            (["--leeway", "1h"], "--leeway is at most 10m"),
            (["--leeway", "soon"], "--leeway"),
            (["--at", "yesterday"], "--at"),
            (["--jwks", "file:///etc/passwd"], "only http:// and https:// URLs"),
            (["--jwks", "ftp://127.0.0.1/jwks.json"], "only http:// and https:// URLs"),
        ]
        for extra, msg in cases:
            with self.subTest(extra=extra):
                p = verify(tok, *extra)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(msg, p.stderr)
        for opt in ("--jwks", "--alg", "--iss", "--aud", "--typ"):
            with self.subTest(missing=opt):
                args = [KEYMGR, "verify"]
                full = {"--jwks": os.path.join(CORPUS, "jwks.json"), "--alg": "ES256",
                        "--iss": MANIFEST["iss"], "--aud": MANIFEST["aud"], "--typ": "at+jwt"}
                for k, v in full.items():
                    if k != opt:
                        args += [k, v]
                p = subprocess.run(args + ["-"], input=tok, capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(p.returncode, 2)
                self.assertIn("missing " + opt, p.stderr)
        p = subprocess.run([KEYMGR, "verify", "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("Usage: keymgr verify", p.stdout)

    def test_bad_jwks(self):
        tok = read("valid-es256")
        d = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"keymgr-corpus-{os.getpid()}")
        os.makedirs(d, exist_ok=True)
        try:
            cases = {
                "missing.json": (None, "jwks: cannot open"),
                "notjson.json": ("{keys:", "jwks: JWKS is not valid JSON"),
                "private.json": (None, "private member"),
                "dup.json": ('{"keys":[],"keys":[]}', "jwks: JWKS is not valid JSON"),
                "empty.json": ('{"keys":[]}', "is not in the JWKS"),
            }
            with open(os.path.join(CORPUS, "jwks.json")) as f:
                jwks = json.load(f)
            jwks["keys"][0]["d"] = "AAAA"
            cases["private.json"] = (json.dumps(jwks), "private member \"d\"")
            for name, (text, msg) in cases.items():
                path = os.path.join(d, name)
                if text is not None:
                    with open(path, "w") as f:
                        f.write(text)
                with self.subTest(jwks=name):
                    p = verify(tok, jwks=path)
                    self.assertEqual(p.returncode, 1, p.stderr)
                    self.assertIn(msg, p.stderr)
                    self.assertEqual(len(p.stderr.strip().splitlines()), 1)
        finally:
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))
            os.rmdir(d)


if __name__ == "__main__":
    KEYMGR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
