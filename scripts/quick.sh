#!/usr/bin/env bash
# The main job on the embedded default: installs what it needs, builds sieve, and runs the defense
# benchmark's quick preset (`sieve defend --preset quick`): ResNet-20 on the built-in synthetic
# dataset with 5% poisons, every defense, a retrain per defense, a few minutes on a 2-core CPU (on
# the GPU when one is visible). Results land in results/quick/ (results.md, CSV, JSON, plots).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target sieve
out=results/quick
rm -rf "$out"
build/release/sieve defend --preset quick --out "$out" "$@"
