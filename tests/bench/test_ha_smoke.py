#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/ha briefly (suite 'bench'): one failover, a few store operations of each kind on
SQLite and PostgreSQL, and one second of wrk against a follower's JWKS and nginx (or, without
wrk, the part says it was not run); the tables and the --json figures are complete and
consistent (every ratio is the quotient of the figures beside it, the new leader's epoch is
the next one, the measured node is a follower). It asserts behaviour, never speed.

  test_ha_smoke.py SOURCE_ROOT BUILD_DIR LEASE
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC, BUILD, LEASE = sys.argv[1], sys.argv[2], sys.argv[3]
OPS = ("keyset_create", "keyset_get", "jwks_serial_next", "jwks_change", "jwks_change_docs")


class BenchHaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "ha.json")
            p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "bench", "ha"), BUILD,
                                "--rounds", "5", "--failovers", "1", "--lease", LEASE,
                                "--jwks-duration", "1", "--json", data],
                               capture_output=True, text=True, timeout=900)
            cls.rc, cls.out, cls.err = p.returncode, p.stdout, p.stderr
            cls.data = None
            if os.path.exists(data):
                with open(data) as f:
                    cls.data = json.load(f)

    def test_runs(self):
        self.assertEqual(self.rc, 0, self.err)
        self.assertIsNotNone(self.data, self.err)

    def test_failover(self):
        lease = int(LEASE)
        self.assertEqual(self.data["bound_seconds"], lease + lease / 3.0)
        fo = self.data["failovers"]
        self.assertEqual(len(fo), 1)
        f = fo[0]
        self.assertGreater(f["seconds"], 0)
        self.assertNotEqual(f["from"], f["to"])
        self.assertGreaterEqual(f["epoch"], 2)
        self.assertEqual(f["ratio"], f["seconds"] / self.data["bound_seconds"])
        self.assertIn("== failover: leader SIGKILL", self.out)
        self.assertIn("median", self.out)

    def test_store_ops(self):
        rows = {r["op"]: r for r in self.data["store_ops"]}
        self.assertEqual(sorted(rows), sorted(OPS))
        for op, r in rows.items():
            for be in ("sqlite", "postgresql"):
                self.assertEqual(r[be]["rounds"], 5, (op, be))
                self.assertGreater(r[be]["median_us"], 0, (op, be))
                self.assertLessEqual(r[be]["min_us"], r[be]["median_us"], (op, be))
                self.assertLessEqual(r[be]["median_us"], r[be]["max_us"], (op, be))
            self.assertEqual(r["ratio"], r["postgresql"]["median_us"] / r["sqlite"]["median_us"])
        self.assertIn("documents written inside each change's transaction (PostgreSQL)",
                      self.out)
        table = self.out[self.out.index("== store operations"):].splitlines()
        for op in OPS:
            self.assertTrue(any(l.startswith(op) for l in table), op)

    def test_jwks_follower(self):
        jw = self.data["jwks_follower"]
        if shutil.which("wrk") is None:
            self.assertIn("skipped", jw)
            self.assertIn("== JWKS from a follower: not run: wrk not found", self.out)
            return
        self.assertNotEqual(jw["node"], jw["leader"])
        self.assertEqual(jw["keys"], 5)
        self.assertTrue(jw["unchanged"], "the document changed while measured")
        for name in ("follower", "nginx"):
            self.assertEqual(len(jw[name]["runs"]), 1, name)
            self.assertGreater(jw[name]["rps"], 0, name)
            self.assertEqual(jw[name]["rps"], jw[name]["runs"][0][0], name)
        self.assertEqual(jw["ratio"], jw["follower"]["rps"] / jw["nginx"]["rps"])
        self.assertEqual(jw["p99_ratio"], jw["follower"]["p99_us"] / jw["nginx"]["p99_us"])
        self.assertEqual(jw["round_ratios"], [jw["ratio"]])
        self.assertEqual(jw["median_round_ratio"], jw["ratio"])
        table = self.out[self.out.index("== JWKS from a follower beside nginx"):]
        self.assertIn(f"throughput {jw['ratio']:.2f}", table)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
