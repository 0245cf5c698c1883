#!/usr/bin/env bash
# A run that fails on bad input (a missing dataset, a bad flag value found after parsing) exits
# non-zero with one "sieve: ..." line and leaves no output folder behind; a folder that existed
# before the run is left as it was.
set -u
sieve="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
status=0
expect_nothing() {  # name, out folder, command...
  local name="$1" out="$2"
  shift 2
  if "$@" >stdout 2>stderr; then
    echo "FAIL $name: exited 0"; status=1; return
  fi
  if [ "$(grep -c '^sieve: ' stderr)" != 1 ]; then
    echo "FAIL $name: expected one 'sieve:' line, got:"; cat stderr; status=1
  fi
  if [ -e "$out" ]; then
    echo "FAIL $name: $out was left behind:"; find "$out"; status=1
  else
    echo "ok   $name: $(cat stderr)"
  fi
}
expect_nothing "train, missing CIFAR-10" o-train "$sieve" train --dataset cifar10 --data "$work/none" --out o-train
expect_nothing "train, epochs 0" o-train0 "$sieve" train --preset quick --epochs 0 --out o-train0
expect_nothing "defend, missing CIFAR-10" o-defend "$sieve" defend --dataset cifar10 --data "$work/none" --out o-defend
expect_nothing "defend, bad defense list" o-defend2 "$sieve" defend --preset quick --defenses nope --out o-defend2
expect_nothing "study, missing CIFAR-10" o-study "$sieve" study --data "$work/none" --out o-study
expect_nothing "study, bad method" o-study2 "$sieve" study --preset quick --methods nope --out o-study2
# A folder that was there before is kept, files and all.
mkdir -p kept && echo note > kept/note.txt
"$sieve" train --dataset cifar10 --data "$work/none" --out kept >/dev/null 2>&1
if [ ! -f kept/note.txt ]; then echo "FAIL an existing --out folder was touched"; status=1; else echo "ok   existing folder kept"; fi
exit $status
