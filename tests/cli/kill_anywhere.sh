#!/usr/bin/env bash
# Kill-anywhere: `sieve defend --preset quick` and `sieve study --preset quick` are killed with
# SIGKILL again and again, and resumed each time, until they finish; then every file they wrote
# must equal the files of an uninterrupted run (timings aside: seconds, images/s and the run's
# start time differ by nature), with no temporary file left anywhere. Kills come two ways, in
# turn: at a random instant, and in the middle of a random atomic write (SIEVE_FAULT_KILL_WRITE=N:
# the N-th write of the process dies with half its bytes written), which is where checkpoints,
# feature dumps and results are most fragile.
#   tests/cli/kill_anywhere.sh SIEVE [KILLS_PER_COMMAND=3] [SEED=1] [COMMANDS="defend study"]
set -u
sieve=$(realpath "$1")
kills_wanted="${2:-3}"
RANDOM="${3:-1}"
commands="${4:-defend study}"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
total_kills=0

for cmd in $commands; do
  # Both runs write to a folder named "out" (in two places), so the paths they record agree.
  mkdir -p "$work/$cmd-whole" "$work/$cmd-killed"
  t0=$(date +%s%N)
  if ! (cd "$work/$cmd-whole" && "$sieve" "$cmd" --preset quick --out out >"$work/$cmd-whole.log" 2>&1); then
    echo "FAIL $cmd: the uninterrupted run failed"; tail -3 "$work/$cmd-whole.log"; status=1; continue
  fi
  whole_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  cd "$work/$cmd-killed"
  kills=0 attempts=0
  while [ $kills -lt "$kills_wanted" ] && [ $attempts -lt $((kills_wanted * 4)) ]; do
    attempts=$((attempts + 1))
    if [ $((attempts % 2)) -eq 1 ]; then
      how="in atomic write $((RANDOM % 40 + 1))"
      SIEVE_FAULT_KILL_WRITE="${how##* }" "$sieve" "$cmd" --preset quick --out out >>"$work/$cmd-killed.log" 2>&1
      rc=$?
    else
      delay_ms=$((RANDOM % (whole_ms / kills_wanted + 1) + 200))
      how="after ${delay_ms} ms"
      "$sieve" "$cmd" --preset quick --out out >>"$work/$cmd-killed.log" 2>&1 &
      pid=$!
      sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
      kill -KILL $pid 2>/dev/null
      wait $pid
      rc=$?
    fi
    if [ $rc -eq 137 ]; then
      kills=$((kills + 1))
      echo "     $cmd: killed $how"
    elif [ $rc -ne 0 ]; then
      echo "FAIL $cmd: a resumed run failed (exit $rc) instead of continuing:"; tail -3 "$work/$cmd-killed.log"
      status=1; break
    else
      break  # it finished before the kill came
    fi
  done
  total_kills=$((total_kills + kills))
  if ! "$sieve" "$cmd" --preset quick --out out >>"$work/$cmd-killed.log" 2>&1; then
    echo "FAIL $cmd: the last resume failed:"; tail -3 "$work/$cmd-killed.log"; status=1; continue
  fi
  cd "$work"
  if python3 "$here/compare_runs.py" "$work/$cmd-whole/out" "$work/$cmd-killed/out"; then
    echo "ok   $cmd: $kills kills, then resumed to the same files as an uninterrupted run"
  else
    status=1
  fi
done
echo "kill-anywhere: $total_kills kills in all"
exit $status
