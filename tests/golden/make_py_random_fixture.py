#!/usr/bin/env python3
"""CPython's `random` module as the oracle of engine/py_random.h: for a few seeds, the first
raw 32-bit words, getrandbits of several widths, _randbelow, random(), and random.sample over
range(n) for small cases of both of its algorithms (pool and set) and for study 1's draws with
its three published seeds: the 1000 poison indices in full, the 25,000-image Random subset as
a hash and a prefix, and how many poisons that subset keeps (the published 993 / 995 / 995).

Standard library only. Regenerate:  python3 tests/golden/make_py_random_fixture.py
"""
import json
import math
import os
import random
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "py_random.json")
MASK = (1 << 64) - 1


def list_hash(values):
    """A 64-bit polynomial hash of a list of ints; tests/unit/py_random_test.cpp computes the same."""
    h = 0
    for v in values:
        h = (h * 1000003 + v + 1) & MASK
    return h


def uses_pool(n, k):
    """random.sample's own choice (Lib/random.py)."""
    setsize = 21
    if k > 5:
        setsize += 4 ** math.ceil(math.log(k * 3, 4))
    return n <= setsize


def main():
    streams = []
    for i, seed in enumerate([0, 1608637542, 1, 42, 12345, 2**31 - 1, 2**32 - 1, 2**32, 2**32 + 5, 2**63 + 11]):
        random.seed(seed)
        words = [random.getrandbits(32) for _ in range(1300 if i < 2 else 16)]  # two twists of 624 words
        random.seed(seed)
        bits = [[k, str(random.getrandbits(k))] for k in (1, 7, 16, 31, 32, 33, 48, 63, 64)]
        random.seed(seed)
        below = [[n, random._inst._randbelow(n)] for n in (1, 2, 3, 10, 1000, 50000, 65536, 65537, 2**40 + 3)]
        random.seed(seed)
        floats = [random.random().hex() for _ in range(5)]
        streams.append({"seed": str(seed), "u32": words, "getrandbits": bits, "randbelow": below,
                        "random_hex": floats})

    samples = []
    for seed, n, k in [(1, 10, 3), (2, 10, 10), (3, 21, 5), (4, 22, 5), (5, 50, 6), (6, 85, 6), (7, 86, 6),
                       (8, 1000, 5), (9, 1000, 400), (10, 100, 100), (11, 5000, 30), (12, 0, 0), (13, 7, 0)]:
        random.seed(seed)
        s = random.sample(range(n), k)
        samples.append({"seed": seed, "n": n, "k": k, "pool": uses_pool(n, k), "values": s})

    study = []
    for seed in [1608637542, 1273642419, 1935803228]:
        random.seed(seed)
        poisons = random.sample(range(50000), 1000)
        random.seed(seed)
        subset = random.sample(range(50000), 25000)
        study.append({"seed": seed, "poisons": poisons, "subset_hash": str(list_hash(subset)),
                      "subset_prefix": subset[:50], "kept": len(set(poisons) & set(subset)),
                      "pool_poisons": uses_pool(50000, 1000), "pool_subset": uses_pool(50000, 25000)})

    fixture = {"python": sys.version.split()[0], "streams": streams, "samples": samples, "study1": study}
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, "kept:", [s["kept"] for s in study])


if __name__ == "__main__":
    main()
