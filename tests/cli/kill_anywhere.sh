#!/usr/bin/env bash
# Kill-anywhere: `sieve defend --preset quick` (on a 1000-image subset for 2 epochs, to keep it
# short) and `sieve study --preset quick` are killed with
# SIEVE_FAULT_KILL_WRITE or SIGKILL again and again, and resumed each time; every round ends with a
# resume that finishes, and then every file the round wrote must equal the files of an
# uninterrupted run (timings aside: seconds, images/s and the run's start time differ by nature),
# with no temporary file left anywhere. Rounds repeat, each from an empty folder, until the kills
# asked for are done. Kills come two ways, in turn: at a random instant, and in the middle of a
# random atomic write (SIEVE_FAULT_KILL_WRITE=N: the N-th write of the process dies with half of
# its bytes written), where checkpoints, feature dumps and results are most fragile.
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
# The flags of each command's runs.
flags() {
  case "$1" in
    defend) echo "--preset quick --epochs 2 --train-subset 1000 --test-subset 300" ;;
    *) echo "--preset quick" ;;
  esac
}

for cmd in $commands; do
  # Every run writes to a folder named "out" (in different places), so the paths they record agree.
  mkdir -p "$work/$cmd-whole"
  t0=$(date +%s%N)
  if ! (cd "$work/$cmd-whole" && "$sieve" "$cmd" $(flags "$cmd") --out out >"$work/$cmd-whole.log" 2>&1); then
    echo "FAIL $cmd: the uninterrupted run failed"; tail -3 "$work/$cmd-whole.log"; status=1; continue
  fi
  whole_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  kills=0 round=0
  while [ $kills -lt "$kills_wanted" ] && [ $round -lt "$kills_wanted" ]; do
    round=$((round + 1))
    dir="$work/$cmd-round-$round"
    mkdir -p "$dir" && cd "$dir"
    log="$dir.log"
    per_round=$(( kills_wanted - kills < 5 ? kills_wanted - kills : 5 ))
    round_kills=0 attempts=0 failed=0
    while [ $round_kills -lt $per_round ] && [ $attempts -lt $((per_round * 4)) ]; do
      attempts=$((attempts + 1))
      if [ $((attempts % 2)) -eq 1 ]; then
        how="in atomic write $((RANDOM % 30 + 1))"
        SIEVE_FAULT_KILL_WRITE="${how##* }" "$sieve" "$cmd" $(flags "$cmd") --out out >>"$log" 2>&1
        rc=$?
      else
        delay_ms=$((RANDOM % (whole_ms / per_round + 1) + 200))
        how="after ${delay_ms} ms"
        "$sieve" "$cmd" $(flags "$cmd") --out out >>"$log" 2>&1 &
        pid=$!
        sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
        kill -KILL $pid 2>/dev/null
        wait $pid 2>/dev/null
        rc=$?
      fi
      if [ $rc -eq 137 ]; then
        round_kills=$((round_kills + 1))
        echo "     $cmd round $round: killed $how"
      elif [ $rc -ne 0 ]; then
        echo "FAIL $cmd round $round: a resumed run failed (exit $rc) instead of continuing:"; tail -3 "$log"
        failed=1; break
      else
        break  # it finished before the kill came
      fi
    done
    kills=$((kills + round_kills))
    if [ $failed -eq 0 ] && ! "$sieve" "$cmd" $(flags "$cmd") --out out >>"$log" 2>&1; then
      echo "FAIL $cmd round $round: the last resume failed:"; tail -3 "$log"; failed=1
    fi
    cd "$work"
    if [ $failed -eq 0 ] && python3 "$here/compare_runs.py" "$work/$cmd-whole/out" "$dir/out"; then
      echo "ok   $cmd round $round: $round_kills kills, resumed to the same files as an uninterrupted run"
    else
      status=1
    fi
    rm -rf "$dir"
  done
  total_kills=$((total_kills + kills))
done
echo "kill-anywhere: $total_kills kills in all"
exit $status
