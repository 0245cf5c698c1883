#!/usr/bin/env python3
"""Compares two output folders of sieve runs of the same command: the same files, byte for byte,
except what measures time (JSON keys seconds, images_per_s, run: in JSON files, in the JSON held
by a safetensors header's metadata, whose tensors must match byte for byte; the columns of those
names in CSV files); and no temporary file (*.tmp.*) in either. Prints each difference; exit 1
if any. Standard library only.   compare_runs.py WHOLE_RUN_DIR RESUMED_RUN_DIR"""
import json
import os
import struct
import sys

TIMING_KEYS = {"seconds", "images_per_s", "run"}


def strip_timing(value):
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def safetensors_without_timing(data):
    """(header without timing, tensor bytes) of a safetensors file; metadata values that hold JSON
    (a checkpoint's training history) lose their timing keys."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    meta = header.get("__metadata__", {})
    for key, value in meta.items():
        try:
            meta[key] = strip_timing(json.loads(value))
        except ValueError:
            pass
    return header, data[8 + length:]


def csv_without_timing(text):
    lines = text.splitlines()
    if not lines:
        return lines
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in TIMING_KEYS]
    return [",".join(f for i, f in enumerate(line.split(",")) if i in keep) for line in lines]


def files(root):
    out = set()
    for folder, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(folder, n), root))
    return out


def main(a, b):
    problems = []
    fa, fb = files(a), files(b)
    for name in sorted(fa ^ fb):
        problems.append(f"only in {'the whole run' if name in fa else 'the resumed run'}: {name}")
    for name in sorted(fa | fb):
        if ".tmp." in os.path.basename(name):
            problems.append(f"temporary file left: {name}")
    for name in sorted(fa & fb):
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        with open(pa, "rb") as x, open(pb, "rb") as y:
            da, db = x.read(), y.read()
        if da == db:
            continue
        if name.endswith(".json"):
            try:
                if strip_timing(json.loads(da)) == strip_timing(json.loads(db)):
                    continue
            except ValueError:
                problems.append(f"not valid JSON (half-written?): {name}")
                continue
        if name.endswith(".csv") and csv_without_timing(da.decode()) == csv_without_timing(db.decode()):
            continue
        if name.endswith(".safetensors"):
            try:
                if safetensors_without_timing(da) == safetensors_without_timing(db):
                    continue
            except (ValueError, struct.error):
                problems.append(f"not a valid safetensors file (half-written?): {name}")
                continue
        problems.append(f"differs: {name}")
    for p in problems:
        print("FAIL", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
