#!/usr/bin/env bash
# The main job on the embedded default: installs what it needs, builds sieve, and trains ResNet-20
# on the built-in synthetic dataset (`sieve train --preset quick`), a few minutes on a 2-core CPU
# (on the GPU when one is visible). Results land in results/quick/ (metrics, plot, weights).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release --target sieve
out=results/quick
rm -rf "$out"
build/release/sieve train --preset quick --out "$out" "$@"
