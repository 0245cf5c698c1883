#!/usr/bin/env bash
# Builds sieve (CUDA code included whenever the toolkit is found) and runs every test:
# the CPU suite always, the GPU parity suite where a GPU is visible (reported as Skipped elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
ctest --preset release -j "$(nproc)"
