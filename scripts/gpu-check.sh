#!/usr/bin/env bash
# The one command to run on a GPU machine: builds sieve there and proves its CUDA path in one
# call of at most 9 minutes, on a machine that may have no internet and no Debian packages.
#   scripts/gpu-bundle.sh                 # first, on a machine with Debian packages: .gpu-bundle/
#   scripts/gpu-check.sh OUTDIR           # then, on the GPU machine, with .gpu-bundle beside
# Steps, each under its own time limit (seconds), each recorded in OUTDIR/summary.md whatever
# happens to the others:
#   1. unpack .gpu-bundle/debs into a private prefix (never into /)            <= 10
#   2. configure and build sieve + the GPU suite on every core; cuDNN/cuBLAS from the CUDA
#      toolkit, or from a PyTorch install's site-packages/nvidia                 <= 170
#   3. the GPU parity suite with SIEVE_REQUIRE_GPU=1 (a GPU that cannot run fails it) and
#      NaN-poisoned allocations                                                  <= 55
#   4. the same suite under compute-sanitizer memcheck, where it works           <= 35
#      two processes training the same run (CUDA graph on) must write identical weights, and a
#      third with --cuda-graph off the same ones again                           <= 25
#   5. sieve bench --compare --device cuda, the four models beside PyTorch       <= 90
#   6. sieve-kernel-study: the step's hand-written kernels against their CPU references,
#      their variants and GB/s                                                   <= 15
#   7. ResNet-20 on real CIFAR-10 (the JPEG copy, as an image folder) for as many epochs as
#      fit in the time the other steps leave                                     <= 140
# The limits add up to 540 s: the whole check ends within 9 minutes. SIEVE_CHECK_TIME_SCALE=N
# multiplies them, for a rehearsal on a small machine without a GPU.
# OUTDIR gets 7 files (each far under 16 MiB): summary.md, build.log, gpu-suite.txt (with the
# sanitizer's report), bench.md, bench.json, kernels.md, train.txt.
set -u
out="${1:?usage: scripts/gpu-check.sh OUTDIR}"
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
summary="$out/summary.md"
start=$(date +%s)
{
  echo "# sieve gpu-check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/GPU: /'
  else
    echo "GPU: none (nvidia-smi not found)"
  fi
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
} >"$summary"

# step NAME LIMIT COMMAND...: runs COMMAND (a program or one of the functions below, which are
# exported with the variables they read) under a time limit and records its outcome.
step() {
  local name="$1" limit="$2" t0 rc
  shift 2
  t0=$(date +%s)
  limit=$((limit * ${SIEVE_CHECK_TIME_SCALE:-1}))
  timeout --kill-after=5 "$limit" bash -c '"$@"' step "$@"
  rc=$?
  local result="ok"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && result="stopped at its ${limit} s limit"
  [ $rc -ne 0 ] && [ "$result" = ok ] && result="FAILED (exit $rc)"
  echo "| $name | $result | $(( $(date +%s) - t0 )) |" >>"$summary"
  return $rc
}

# 1. The Debian build dependencies, unpacked into a private prefix.
export root work
export prefix="$work/prefix"
unpack() {
  mkdir -p "$prefix"
  for deb in "$root"/.gpu-bundle/debs/*.deb; do dpkg-deb -x "$deb" "$prefix" || return 1; done
}
export -f unpack
step "unpack .deb bundle" 10 unpack

# cuDNN: the toolkit's, else a PyTorch install's (site-packages/nvidia/cudnn).
cudnn_root=""
if [ ! -f /usr/local/cuda/include/cudnn.h ]; then
  cudnn_root=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
fi
libdirs="$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openblas-openmp"
[ -n "$cudnn_root" ] && libdirs="$libdirs:$cudnn_root/lib"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 2. Build.
export cudnn_root build="$work/build"
configure_and_build() {
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DSIEVE_DEPS_PREFIX="$prefix" -DCMAKE_PREFIX_PATH="$prefix/usr" \
        ${cudnn_root:+-DCUDNN_ROOT="$cudnn_root"} &&
    ninja -C "$build" -j "$(nproc)" sieve sieve_gpu_tests sieve-kernel-study
}
export -f configure_and_build
step "build (cuDNN: ${cudnn_root:-CUDA toolkit})" 170 configure_and_build >"$out/build.log" 2>&1
export sieve="$build/sieve"
suite="$build/tests/sieve_gpu_tests"

# 3. The GPU parity suite: a machine without a usable GPU fails it instead of skipping.
SIEVE_REQUIRE_GPU=1 step "GPU parity suite" 55 "$suite" >"$out/gpu-suite.txt" 2>&1

# 4. Under compute-sanitizer memcheck (out-of-bounds and misaligned accesses, leaks).
if command -v compute-sanitizer >/dev/null; then
  echo "== the same suite under compute-sanitizer memcheck ==" >>"$out/gpu-suite.txt"
  SIEVE_REQUIRE_GPU=1 step "GPU suite under compute-sanitizer memcheck" 35 \
    compute-sanitizer --tool memcheck --error-exitcode 9 "$suite" >>"$out/gpu-suite.txt" 2>&1
else
  echo "| GPU suite under compute-sanitizer | not available | 0 |" >>"$summary"
fi

# 4b. Two processes, one result: cuDNN algorithms are chosen without timing, so two runs of the
# same training on the same GPU must end with the same bytes; the step replayed from its CUDA
# graph and the eager step (--cuda-graph off) too.
same_twice() {
  for run in a b; do
    "$sieve" train --preset quick --device cuda --epochs 2 --out "$work/twice-$run" >/dev/null 2>&1 || return 1
  done
  "$sieve" train --preset quick --device cuda --epochs 2 --cuda-graph off --out "$work/twice-eager" >/dev/null 2>&1 ||
    return 1
  cmp "$work/twice-a/model.safetensors" "$work/twice-b/model.safetensors" &&
    cmp "$work/twice-a/model.safetensors" "$work/twice-eager/model.safetensors"
}
export -f same_twice
echo "== two processes, and --cuda-graph off, train to identical weights ==" >>"$out/gpu-suite.txt"
step "two processes (graph on) and one eager train to identical weights" 25 same_twice >>"$out/gpu-suite.txt" 2>&1

# 5. Speed beside PyTorch on the same GPU.
step "sieve bench --compare --device cuda" 90 "$sieve" bench --compare --device cuda \
  --models resnet20,resnet18,vgg16_bn,mobilenet_v2 --precision fp32 --warmup-steps 5 --steps 20 --repeats 3 \
  --out "$work/bench" >"$work/bench.log" 2>&1
cp "$work/bench/bench.md" "$work/bench/bench.json" "$out/" 2>/dev/null || cp "$work/bench.log" "$out/bench.md"

# 6. The hand-written kernels beside their CPU references, their variants and bandwidth.
step "sieve-kernel-study" 15 "$build/sieve-kernel-study" --out "$work/kernels" >"$work/kernels.log" 2>&1
cp "$work/kernels/kernels.md" "$out/" 2>/dev/null || cp "$work/kernels.log" "$out/kernels.md"

# 7. Real data: ResNet-20 on CIFAR-10 (JPEG copy) for as many epochs as fit in the limit.
train() {
  tar -xzf "$root/.gpu-bundle/cifar10-jpg.tar.gz" -C "$work" &&
    "$sieve" train --model resnet20 --dataset image_folder --data "$work/cifar10-jpg" --device cuda \
      --epochs 30 --out "$work/train"
}
export -f train
step "ResNet-20 on CIFAR-10 (JPEG), 30 epochs or the limit" 140 train >"$out/train.txt" 2>&1

echo >>"$summary"
echo "Total $(( $(date +%s) - start )) s. Parity suite: $(grep -E '^\[doctest\] (test cases|assertions)' "$out/gpu-suite.txt" | tr '\n' ' ')" >>"$summary"
echo "Last training epoch: $(grep -E '^epoch' "$out/train.txt" | tail -1)" >>"$summary"
rm -rf "$work"
cat "$summary"
