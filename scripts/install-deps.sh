#!/usr/bin/env bash
# Installs sieve's build dependencies from Debian packages (only those missing).
# The CUDA toolkit (nvcc, cuDNN, cuBLAS, cuSOLVER) is expected under /usr/local/cuda when present;
# without it sieve builds its CPU backend only.
set -euo pipefail

packages=(build-essential cmake ninja-build doctest-dev libstb-dev libopenblas-openmp-dev
          libcli11-dev nlohmann-json3-dev zlib1g-dev libdnnl-dev libturbojpeg0-dev libpng-dev
          clang libclang-rt-dev libomp-dev  # clang: the sanitizer build and the libFuzzer targets
          python3-numpy)                    # python/sieve_defense.py (defenses written in Python)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "sieve: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
