#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) with the limits the README states,
# growing tests/fuzz/corpus/TARGET, then minimises each corpus. Needs the
# nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# A crash is saved under tests/fuzz/artifacts/TARGET/; once fixed, copy it to
# tests/fuzz/regressions/TARGET/ so the stable test replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-1800}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)
fi
mkdir -p tests/fuzz/logs
for t in "${targets[@]}"; do
  mkdir -p "tests/fuzz/corpus/$t"
  log="tests/fuzz/logs/$t.log"
  # 10 million executions or the time limit, whichever comes first; an input
  # taking over 10 s, more than 2 GB resident or a single 512 MB allocation is a failure.
  cargo +nightly fuzz run "$t" --fuzz-dir tests/fuzz -- \
    -runs=10000000 -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 >"$log" 2>&1 || {
      echo "$t: FAILED (see $log and tests/fuzz/artifacts/$t)"; continue; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$secs")
  cargo +nightly fuzz cmin "$t" --fuzz-dir tests/fuzz >>"$log" 2>&1 || true
  files=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
  size=$(( $(find "tests/fuzz/corpus/$t" -type f -exec cat {} + | wc -c) / 1024 ))
  echo "$t: $runs executions in ${took} s, corpus $files files (${size} KiB), no crash"
done
