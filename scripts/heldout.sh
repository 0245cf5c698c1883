#!/usr/bin/env bash
# Held-out settings for the detectors, none of which any defense was tuned on: ResNet-20 victims
# on 10,000 real CIFAR-10 training images (6 epochs, no augmentation: a few minutes each on a
# 2-core CPU), each one's feature dump kept beside its setting, then every defense scored offline
# on every dump (offline.md, offline.csv in OUT).
#   scripts/heldout.sh CIFAR10_DIR [OUT=results/heldout-cpu]
# Re-running continues: finished victims are reused (sieve defend resumes every stage).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/heldout.sh CIFAR10_DIR [OUT]}
out=${2:-results/heldout-cpu}
sieve=build/release/sieve
[ -x "$sieve" ] || { echo "scripts/heldout.sh: build sieve first (cmake --build --preset release)" >&2; exit 1; }
mkdir -p "$out"

# A smooth, non-noise blend pattern: diagonal colour stripes, written as a PNG with the standard library.
python3 - "$out/stripes.png" <<'EOF'
import math, struct, sys, zlib
w = h = 32
rows = b"".join(b"\x00" + bytes(int(127.5 + 127.5 * math.sin(2 * math.pi * ((x + y) / 8 + k / 3)))
                                 for x in range(w) for k in range(3)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
      chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF

common=(--model resnet20 --dataset cifar10 --data "$data" --train-subset 10000 --test-subset 2000 --epochs 6
        --no-augment --seed 1 --defenses none --device cpu)
victim() {
  local name=$1; shift
  echo "== $name" >&2
  "$sieve" defend "${common[@]}" "$@" --out "$out/$name"
}
victim blend-stripes --trigger "blend:$out/stripes.png" --alpha 0.15
victim badnets-0.5pct --trigger badnets --poison-fraction 0.005
victim badnets-10pct-all-classes --trigger badnets --poison-fraction 0.10 --poison-all-classes
victim badnets-25pct-majority --trigger badnets --poison-fraction 0.25   # 2500 poisons against 1000 clean images of class 0
victim badnets-target7 --trigger badnets --target 7
victim clean-told-5pct --trigger badnets --poison-fraction 0 --assumed-fraction 0.05

"$sieve" defend --offline "$out"/*/*/features.safetensors --defenses all --out "$out"
echo "scripts/heldout.sh: $out/offline.md" >&2
