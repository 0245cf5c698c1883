#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that has no internet and no Debian
# packages (a lent GPU node, an air-gapped cluster): the Debian build dependencies as .deb files
# (unpacked there into a private prefix, never into /) and CIFAR-10 as its 19 MiB JPEG copy, read
# as an image folder. Everything goes to .gpu-bundle/ (git-ignored); the script prints what the
# sources plus the bundle weigh, which must stay under 64 MiB to travel in one call.
#   scripts/gpu-bundle.sh [SHARED_DIR]     (default ../shared beside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared}"
bundle=.gpu-bundle
rm -rf "$bundle"
mkdir -p "$bundle/debs"

# Headers and libraries sieve builds against, and the run-time libraries they need that a CUDA
# image may lack (OpenBLAS's Fortran run-time, oneDNN's OpenCL loader).
packages=(libdnnl-dev libdnnl2 ocl-icd-libopencl1 libopenblas-openmp-dev libopenblas0-openmp libgfortran5
          libquadmath0 doctest-dev libstb-dev libstb0 libcli11-dev nlohmann-json3-dev zlib1g-dev
          libturbojpeg0-dev libturbojpeg0 libpng-dev libpng16-16)
(cd "$bundle/debs" && apt-get download "${packages[@]}" >/dev/null)
echo "sieve: $(ls "$bundle/debs" | wc -l) .deb files, $(du -sh "$bundle/debs" | cut -f1)"

jpg="$shared/datasets/cifar10-jpg.tar.gz"
[ -f "$jpg" ] || { echo "sieve: $jpg: not found (the CIFAR-10 JPEG copy)" >&2; exit 1; }
cp "$jpg" "$bundle/"

tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
extra=$(du -sb "$bundle" | cut -f1)
total=$(( tracked + ${untracked:-0} + extra ))
echo "sieve: sources $((tracked >> 20)) MiB + untracked $(( ${untracked:-0} >> 20 )) MiB + bundle $((extra >> 20)) MiB = $((total >> 20)) MiB (limit 64 MiB)"
[ "$total" -lt $((64 << 20)) ] || { echo "sieve: over 64 MiB: it would not travel" >&2; exit 1; }
