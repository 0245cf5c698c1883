#!/usr/bin/env bash
# The installed package, used as an outside project would: `cmake --install` of this build into a
# scratch prefix, examples/ configured against it with find_package(sieve) alone, built (on the
# shared sieve::sieve and on the static per-layer targets) and run. The sieve::sieve program must
# need libsieve.so and none of the libraries sieve keeps private (CUDA, BLAS, oneDNN).
#   install_example.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
[ -f "$tmp/prefix/lib/cmake/sieve/sieveConfig.cmake" ] || fail "no sieveConfig.cmake in the installed tree"
cmake -S "$src/examples" -B "$tmp/example" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log"; fail "configuring examples/ against the installed package"; }
cmake --build "$tmp/example" -j 2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "building examples/"; }
grep "CUDA backend" "$tmp/configure.log"

needed=$(readelf -d "$tmp/example/own_defense" | grep NEEDED)
echo "$needed"
grep -q "libsieve.so" <<<"$needed" || fail "own_defense does not load libsieve.so"
if grep -Eq "libcuda|libcublas|libcudnn|libcusolver|libopenblas|libdnnl" <<<"$needed"; then
  fail "own_defense links a library sieve keeps private"
fi

for program in own_defense own_defense_static; do
  OMP_NUM_THREADS=2 "$tmp/example/$program" 400 1 >"$tmp/$program.out" 2>"$tmp/$program.err" ||
    { cat "$tmp/$program.err"; fail "$program exited with an error"; }
  cat "$tmp/$program.out"
  for d in centroid_distance spectral_signature; do
    grep -Eq "^$d +removes +20: +[0-9]+ of +20 poisons, recall [01]\.[0-9]{3}" "$tmp/$program.out" ||
      fail "$program printed no detection line for $d"
  done
done
# One program, two link modes, the same numbers.
cmp -s "$tmp/own_defense.out" "$tmp/own_defense_static.out" || fail "the shared and static programs disagree"
echo "PASS: examples/ built and ran against the installed package"
