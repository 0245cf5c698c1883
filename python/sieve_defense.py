#!/usr/bin/env python3
"""Run a defense written in Python on a sieve feature dump and write its scores for sieve.

The defense is any object with the benchmark's interface:
    fit(features, labels, poison_fraction)      features (N, D) float32, labels (N,) int64
    score_samples(features, logits) -> (N,)     one suspicion score per sample, higher = more suspicious

    python3 python/sieve_defense.py FEATURES.safetensors MODULE:CLASS OUT.npy

MODULE is a Python file (path/to/my_defense.py) or an importable module name; CLASS is built
with no arguments. OUT.npy then goes back to sieve:  sieve defend ... --scores OUT.npy
Needs NumPy only (the safetensors file is read here, by its published layout).
"""
import argparse
import importlib
import importlib.util
import json
import os
import struct
import sys

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def load_safetensors(path):
    """(tensors, metadata) of a safetensors file: 8-byte little-endian header length, JSON header, data."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8 : 8 + n])
    data = memoryview(raw)[8 + n :]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {entry['dtype']}, not one of {sorted(_DTYPES)}")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return tensors, metadata


def load_dump(path):
    """features (N, D) float32, logits (N, C) float32, labels (N,) int64, the poison fraction defenses are told."""
    tensors, metadata = load_safetensors(path)
    for key in ("features", "logits", "labels"):
        if key not in tensors:
            raise ValueError(f"{path}: not a sieve feature dump (no {key!r} tensor)")
    fraction = float(metadata.get("assumed_fraction", metadata.get("poison_fraction", "nan")))
    return (tensors["features"].astype(np.float32), tensors["logits"].astype(np.float32),
            tensors["labels"].astype(np.int64), fraction)


def load_defense(spec):
    """MODULE:CLASS -> an instance; MODULE is a .py path or a module name."""
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"{spec!r}: expected MODULE:CLASS, e.g. my_defense.py:MyDefense")
    if module_name.endswith(".py") or os.sep in module_name:
        loaded = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(module_name))[0], module_name)
        if loaded is None:
            raise ValueError(f"{module_name}: cannot load this file as a Python module")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, class_name)()


def score_dump(dump_path, defense):
    """Fits the defense on the dump and returns its float64 scores, one per sample, checked."""
    features, logits, labels, fraction = load_dump(dump_path)
    defense.fit(features, labels, fraction)
    scores = np.asarray(defense.score_samples(features, logits), dtype=np.float64).reshape(-1)
    if scores.shape[0] != features.shape[0]:
        raise ValueError(f"the defense returned {scores.shape[0]} scores for {features.shape[0]} samples")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"the defense returned a non-finite score at index {int(np.flatnonzero(~np.isfinite(scores))[0])}")
    return scores


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("features", help="features.safetensors written by sieve defend")
    p.add_argument("defense", help="MODULE:CLASS of an object with fit() and score_samples()")
    p.add_argument("out", help="scores file to write (.npy)")
    a = p.parse_args(argv)
    try:
        if not a.out.endswith(".npy"):
            raise ValueError(f"{a.out}: the scores file is written as .npy")
        scores = score_dump(a.features, load_defense(a.defense))
        tmp = a.out + ".tmp.npy"
        np.save(tmp, scores)
        os.replace(tmp, a.out)
    except Exception as e:  # one line, like sieve's own errors
        print(f"sieve_defense: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    print(f"sieve_defense: {len(scores)} scores -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
