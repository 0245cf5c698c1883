#!/usr/bin/env bash
# Runs one fuzz target for a fixed time on its seeds, its regression inputs and the corpus it
# grew before:   run_fuzz.sh FUZZ_BINARY SEED_MAKER TARGET SECONDS WORK_DIR [libFuzzer flags...]
# Any crash, sanitizer report, leak, timeout (10 s per input) or allocation over 2 GiB fails it;
# the input that did it is left in WORK_DIR/artifacts/TARGET/.
set -euo pipefail
binary=$1 seeds=$2 target=$3 seconds=$4 work=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
"$seeds" "$work/seeds"
mkdir -p "$work/corpus/$target" "$work/artifacts/$target"
dirs=("$work/corpus/$target" "$work/seeds/$target")
[ -d "$here/regressions/$target" ] && dirs+=("$here/regressions/$target")
exec "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 "$@" "${dirs[@]}"
