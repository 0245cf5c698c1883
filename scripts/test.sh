#!/usr/bin/env bash
# Builds sieve (CUDA code included whenever the toolkit is found) and runs every test:
#  1. the release build: the CPU suite always, the GPU parity suite where a GPU is visible
#     (reported as Skipped elsewhere), the command-line tests;
#  2. the sanitizer job (the asan preset, clang): the unit suite under AddressSanitizer +
#     UndefinedBehaviorSanitizer, and each libFuzzer target for a short fixed time on its seeds
#     and regression inputs. SIEVE_TEST_SANITIZERS=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
ctest --preset release -j "$(nproc)"
if [ "${SIEVE_TEST_SANITIZERS:-1}" != 0 ]; then
  cmake --preset asan
  cmake --build --preset asan
  ctest --preset asan -j "$(nproc)"
fi
