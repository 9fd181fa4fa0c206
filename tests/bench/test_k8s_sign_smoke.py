#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""bench/k8s-sign end to end, briefly (suite 'bench'): its four paths (gRPC through
keymgr-k8s-signer, keymgrd's control socket from Python and from C, the raw C_Sign loop) all
sign on a real keymgrd and SoftHSM token, and its table has every row. Behaviour only: a rate
only has to be above zero, and each printed figure is the rounding of the unrounded one the
--json file carries.

  test_k8s_sign_smoke.py SOURCE_ROOT BUILD_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

SRC, BUILD = sys.argv[1], sys.argv[2]


def main():
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "k8s.json")
        p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "bench", "k8s-sign"), BUILD,
                            "--seconds", "0.2", "--rounds", "1", "--json", data],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or not os.path.exists(data):
            print(f"FAIL bench/k8s-sign exited {p.returncode}: {p.stderr[-2000:]}")
            return 1
        with open(data) as f:
            rows = {r["path"]: r for r in json.load(f)["rows"]}
    printed = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if f and f[0] in ("grpc", "control", "ctl-c", "raw"):
            printed[f[0]] = f
    bad = []
    for path in ("grpc", "control", "ctl-c", "raw"):
        r = rows.get(path)
        if r is None or path not in printed:
            bad.append(f"{path}: row missing")
            continue
        if not (r["calls"] > 0 and r["per_s"] > 0):
            bad.append(f"{path}: no calls")
        if printed[path][1] != f"{r['per_s']:.0f}" or \
                printed[path][4] != f"{r['ratio_to_raw']:.3f}":
            bad.append(f"{path}: printed {printed[path]} is not the rounding of {r}")
    if abs(rows["raw"]["ratio_to_raw"] - 1.0) > 1e-12:
        bad.append("raw's ratio to itself is not 1")
    for b in bad:
        print(f"FAIL {b}")
    if not bad:
        print("ok   bench.k8s-sign: four paths sign, every row printed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
