#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/sign end to end, briefly (suite 'bench'): the benchmark's three paths (keymgrd, the raw
C_Sign loop, bench-sign-bare) all sign on a real keymgrd and SoftHSM token, and every table has
its rows. It asserts behaviour, never speed: a rate only has to be above zero. The printed
figures are rounded; they are checked against the unrounded ones bench/sign writes with
--json (from bench-sign-client's "exact" lines), never against each other: a ratio of two
rounded rates differs from the real ratio by more than any fixed tolerance when rates are low
(under ASan, 6.153 printed against 6.3 from the rounded rates).

  test_sign_smoke.py SOURCE_ROOT BUILD_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SRC, BUILD = sys.argv[1], sys.argv[2]
ROWS = [(alg, t, mode) for alg in ("ES256", "RS256") for t in ("1", "2")
        for mode in ("strict", "pipelined x4")]


class BenchSignTest(unittest.TestCase):
    out = None

    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "sign.json")
            p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "bench", "sign"), BUILD,
                                "--seconds", "0.3", "--pipeline", "1,4", "--json", data],
                               capture_output=True, text=True, timeout=600)
            cls.rc, cls.out, cls.err = p.returncode, p.stdout, p.stderr
            cls.data = None
            if os.path.exists(data):
                with open(data) as f:
                    cls.data = {(r["alg"], str(r["threads"]), r["mode"]): r
                                for r in json.load(f)["rows"]}

    def exact(self, key):
        """The unrounded figures of a row, with its rates checked against its counts."""
        self.assertIsNotNone(self.data, f"no --json data: {self.err}")
        self.assertIn(key, self.data)
        row = self.data[key]
        self.assertEqual(sorted(row["paths"]), ["bare", "keymgrd", "raw"], key)
        for name, path in row["paths"].items():
            self.assertGreater(path["ops"], 0, (key, name))
            self.assertGreater(path["seconds"], 0, (key, name))
            self.assertEqual(path["per_s"], path["ops"] / path["seconds"], (key, name))
        return row

    def section(self, title):
        lines = self.out.splitlines()
        start = next(i for i, l in enumerate(lines) if l.startswith(title))
        rows = {}
        for l in lines[start + 1:]:
            f = l.split()
            if len(f) < 4 or f[0] not in ("ES256", "RS256"):
                break
            mode = f[2] if f[2] == "strict" else f"{f[2]} {f[3]}"
            rows[(f[0], f[1], mode)] = f[3:] if f[2] == "strict" else f[4:]
        return rows

    def test_exit_status(self):
        self.assertEqual(self.rc, 0, self.err)

    def test_main_table_every_path_signed(self):
        rows = {}
        for l in self.out.splitlines():
            f = l.split()
            if l[:5] in ("ES256", "RS256"):   # the first table's rows are not indented
                mode = f[2] if f[2] == "strict" else f"{f[2]} {f[3]}"
                rows[(f[0], f[1], mode)] = f[3:] if f[2] == "strict" else f[4:]
        self.assertEqual(sorted(rows), sorted(ROWS), self.out)
        for key, f in rows.items():
            row = self.exact(key)
            keymgrd, raw = row["paths"]["keymgrd"]["per_s"], row["paths"]["raw"]["per_s"]
            self.assertGreater(keymgrd, 0, key)
            self.assertGreater(raw, 0, key)
            # the ratio is keymgrd/raw of the unrounded rates; the table prints them rounded
            self.assertEqual(row["ratio"], keymgrd / raw, key)
            self.assertEqual(f[0], f"{keymgrd:.0f}", key)
            self.assertEqual(f[3], f"{raw:.0f}", key)
            self.assertEqual(f[6], f"{row['ratio']:.3f}", key)
            self.assertIn(f[7], ("yes", "no"))
            self.assertEqual(f[7] == "yes", row["ratio"] >= 0.85, key)
            self.assertEqual(row["meets_target"], row["ratio"] >= 0.85, key)

    def test_bare_server_table(self):
        rows = self.section("Bare socket server:")
        self.assertEqual(sorted(rows), sorted(ROWS), self.out)
        for key, f in rows.items():
            row, server_cpu = self.exact(key), float(f[5])
            p = row["paths"]
            self.assertGreater(p["bare"]["per_s"], 0, key)
            self.assertEqual(row["bare_raw"], p["bare"]["per_s"] / p["raw"]["per_s"], key)
            self.assertEqual(row["keymgrd_bare"], p["keymgrd"]["per_s"] / p["bare"]["per_s"],
                             key)
            self.assertEqual(f[0], f"{p['bare']['per_s']:.0f}", key)
            self.assertEqual(f[3], f"{row['bare_raw']:.3f}", key)
            self.assertEqual(f[4], f"{row['keymgrd_bare']:.3f}", key)
            self.assertGreater(server_cpu, 0, key)   # its CPU time was read, not left at 0

    def test_cpu_table(self):
        rows = self.section("CPU us per request:")
        self.assertEqual(sorted(rows), sorted(ROWS), self.out)
        for key, f in rows.items():
            self.assertGreater(float(f[0]), 0, key)   # keymgrd's CPU per request
            self.assertGreater(float(f[3]), 0, key)   # the raw loop's


class BadInputTest(unittest.TestCase):
    """The benchmark's programs name what is wrong with their arguments."""

    def run_prog(self, name, *args):
        return subprocess.run([os.path.join(BUILD, "bench", name), *args], capture_output=True,
                              text=True, timeout=60)

    def test_bare_server_usage(self):
        p = self.run_prog("bench-sign-bare")
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage:", p.stderr)

    def test_bare_server_bad_key_id(self):
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "s")
            p = self.run_prog("bench-sign-bare", sock, "/nonexistent.so", "t", "file:/x",
                              "ES256", "xyz", "500", "1")
            self.assertEqual(p.returncode, 2)
            self.assertIn("bad CKA_ID_HEX", p.stderr)
            self.assertFalse(os.path.exists(sock))

    def test_bare_server_unknown_token(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "softhsm2.conf")
            os.mkdir(os.path.join(d, "tokens"))
            with open(conf, "w") as f:
                f.write(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\n")
            p = subprocess.run([os.path.join(BUILD, "bench", "bench-sign-bare"),
                                os.path.join(d, "s"), os.environ["KEYMGR_TEST_SOFTHSM_MODULE"],
                                "absent", "file:/nonexistent", "ES256", "0a", "500", "1"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, SOFTHSM2_CONF=conf))
            self.assertEqual(p.returncode, 1)
            self.assertIn("no initialised token with label 'absent'", p.stderr)

    def test_client_bad_counts(self):
        p = self.run_prog("bench-sign-client", "/nonexistent.sock", "bench/es256", "ES256",
                          "0a", "/nonexistent.so", "t", "file:/x", "0", "1")
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad THREADS", p.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
