#!/usr/bin/env python3
"""The PyTorch twin of `sieve bench --compare` must build the same networks as sieve: this test
compares the parameter count of each of the four models, at 10 and 100 classes, as printed by
`sieve models` and by `apps/bench/torch_twin.py --param-counts`. Exits 77 (ctest: Skipped) where
PyTorch is not installed; `sieve bench --compare` also refuses any row whose counts differ.

Usage: check_twin_params.py SIEVE_BINARY
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TWIN = os.path.join(HERE, "..", "..", "apps", "bench", "torch_twin.py")


def main():
    try:
        import torch  # noqa: F401
    except ImportError:
        print("check_twin_params: PyTorch is not installed here (pip install torch); skipped")
        return 77
    out = subprocess.run([sys.argv[1], "models"], check=True, capture_output=True, text=True).stdout
    sieve = {}
    for line in out.splitlines()[1:]:
        name, p10, p100, _ = line.split()
        sieve[name] = {"10": int(p10), "100": int(p100)}
    twin = json.loads(subprocess.run([sys.executable, TWIN, "--param-counts"], check=True, capture_output=True,
                                     text=True).stdout)
    bad = 0
    for name, counts in sieve.items():
        for classes, n in counts.items():
            t = twin.get(name, {}).get(classes)
            status = "ok" if t == n else "DIFFERS"
            bad += t != n
            print(f"{name:14s} {classes:>3s} classes: sieve {n:>10d}  twin {t}  {status}")
    if set(twin) != set(sieve):
        print(f"model lists differ: sieve {sorted(sieve)}, twin {sorted(twin)}")
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
