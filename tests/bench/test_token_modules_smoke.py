#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/token-modules briefly (suite 'bench'): on SoftHSM2 and NSS softoken, keymgr's keygen
and signing and the bare Cryptoki peer's both run, and every row has two rates above zero and
their ratio. Behaviour only: no figure is compared with another. Bad arguments are refused by
name.

  test_token_modules_smoke.py SOURCE_ROOT BUILD_DIR
"""
import os
import re
import subprocess
import sys
import unittest

SRC, BUILD = sys.argv[1], sys.argv[2]
RUNNER = os.path.join(SRC, "bench", "token-modules")
ROW = re.compile(r"^(keygen|sign)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", re.M)


class TokenModulesTest(unittest.TestCase):
    def run_bench(self, *args):
        return subprocess.run(["/usr/bin/python3", RUNNER, BUILD] + list(args),
                              capture_output=True, text=True, timeout=600)

    def test_rows(self):
        p = self.run_bench("--seconds", "0.2", "--keygens", "2", "--modules", "softhsm,nss")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        parts = re.split(r"^== (\w+)$", p.stdout, flags=re.M)[1:]
        got = dict(zip(parts[0::2], parts[1::2]))
        self.assertEqual(sorted(got), ["nss", "softhsm"], p.stdout)
        for name, text in got.items():
            rows = {m.group(1): m.groups()[1:] for m in ROW.finditer(text)}
            self.assertEqual(sorted(rows), ["keygen", "sign"], f"{name}: {text}")
            for op, (km, raw, ratio) in rows.items():
                self.assertGreater(float(km), 0, f"{name} {op}")
                self.assertGreater(float(raw), 0, f"{name} {op}")
                self.assertGreater(float(ratio), 0, f"{name} {op}")

    def test_unknown_module_refused(self):
        p = self.run_bench("--modules", "luna")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown module(s) luna", p.stderr)

    def test_bad_alg_refused(self):
        exe = os.path.join(BUILD, "bench", "bench-token-module")
        p = subprocess.run([exe, "--module", "/nonexistent.so", "--token", "x", "--pin-source",
                            "file:/nonexistent", "--alg", "EdDSA"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--alg must be ES256 or RS256, not 'EdDSA'", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
