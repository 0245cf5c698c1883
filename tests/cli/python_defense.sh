#!/usr/bin/env bash
# A defense written in Python, through sieve's harness: a tiny victim's feature dump, scored by
# tests/cli/tiny_defense.py via python/sieve_defense.py, evaluated by `sieve defend --scores`
# (online: retrained, beside a built-in defense; offline: detection only), and bad scores files
# refused with one line each.   python_defense.sh SIEVE
# Skipped (exit 77) where no Python with NumPy is found (scripts/install-deps.sh installs it).
set -euo pipefail
sieve=$1
here=$(cd "$(dirname "$0")" && pwd)
python=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import numpy" 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || { echo "no python3 with numpy: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

flags=(--dataset synthetic --model resnet20 --trigger red_square --poison-fraction 0.1 --epochs 1
       --train-subset 300 --test-subset 100 --batch-size 64 --device cpu --out "$tmp/run")
"$sieve" defend "${flags[@]}" --defenses none 2>"$tmp/victim.log" || { cat "$tmp/victim.log"; fail "victim run"; }
dump="$tmp/run/resnet20-synthetic-red_square/features.safetensors"
[ -f "$dump" ] || fail "no feature dump at $dump"

# The round trip: dump -> Python defense -> scores -> sieve's harness, beside spectral_signature.
"$python" "$here/../../python/sieve_defense.py" "$dump" "$here/tiny_defense.py:CentroidDistance" "$tmp/centroid.npy"
"$sieve" defend "${flags[@]}" --defenses spectral_signature --scores "$tmp/centroid.npy" 2>"$tmp/online.log" ||
  { cat "$tmp/online.log"; fail "defend --scores"; }
for d in spectral_signature external:centroid; do
  grep -q "^resnet20-synthetic-red_square,$d," "$tmp/run/results.csv" || fail "results.csv has no row for $d"
  grep -q "| $d |" "$tmp/run/results.md" || fail "results.md has no row for $d"
done
[ -f "$tmp/run/resnet20-synthetic-red_square/defenses/external:centroid/result.json" ] || fail "no retrain after external:centroid"
"$sieve" defend --offline "$dump" --defenses spectral_signature --scores "$tmp/centroid.npy" --out "$tmp/offline" \
  2>"$tmp/offline.log" || { cat "$tmp/offline.log"; fail "defend --offline --scores"; }
grep -q ",external:centroid," "$tmp/offline/offline.csv" || fail "offline.csv has no row for external:centroid"

# A changed scores file under the same name is refused on resume, not silently reused.
"$python" -c "import numpy as np; np.save('$tmp/centroid.npy', np.arange(300.0))"
if "$sieve" defend "${flags[@]}" --defenses none --scores "$tmp/centroid.npy" 2>"$tmp/changed.log"; then fail "changed scores accepted"; fi
grep -q "centroid.npy: differs from the scores evaluated in" "$tmp/changed.log" || { cat "$tmp/changed.log"; fail "changed scores message"; }

# Bad scores files: one line naming the file and the reason, non-zero exit.
bad() {  # name, python expression of the array, expected text
  "$python" -c "import numpy as np; np.save('$tmp/$1.npy', $2)"
  if "$sieve" defend --offline "$dump" --defenses none --scores "$tmp/$1.npy" --out "$tmp/bad-$1" 2>"$tmp/$1.log"; then
    fail "$1: accepted"
  fi
  [ "$(wc -l < "$tmp/$1.log")" -eq 1 ] || { cat "$tmp/$1.log"; fail "$1: not one line"; }
  grep -q "$tmp/$1.npy: $3" "$tmp/$1.log" || { cat "$tmp/$1.log"; fail "$1: expected '$3'"; }
  [ ! -e "$tmp/bad-$1" ] || fail "$1: left $tmp/bad-$1 behind"
}
bad short "np.zeros(5)" "5 scores, but the training set has 300 samples"
bad nan "np.where(np.arange(300) == 7, np.nan, 1.0)" "score 7 is nan"
bad ints "np.arange(300)" "dtype '<i8' is not a little-endian float32 or float64"
bad matrix "np.zeros((300, 2))" "shape (300, 2) is not one-dimensional"
echo "python defense round trip: ok"
