#!/usr/bin/env bash
# Times `recforge data prepare` (single-threaded) on a ~20-million-line CSV log written by
# `recforge data synth` (615,385 users x 5..60 events, 100,000 items, string ids, a header).
# The log is generated once and reused; the page cache is warmed by one untimed run, then the
# preparation runs `repeats` times and each run's summary and peak memory are printed.
# Usage: benchmarks/data_prepare.sh [BUILD_DIR] [WORK_DIR] [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
work=${2:-/tmp/recforge-data-prepare-bench}
repeats=${3:-3}
mkdir -p "$work"
log="$work/log.csv"
if [[ ! -f "$log" ]]; then
  "$build/recforge" data synth --output "$log" --users 615385 --items 100000 --seed 1
fi
echo "log: $(($(wc -l <"$log") - 1)) lines, $(du -m "$log" | cut -f1) MiB"
prepare=("$build/recforge" data prepare --input "$log" --format csv --header --output "$work/dataset"
         --overwrite)
"${prepare[@]}" >/dev/null
for ((run = 1; run <= repeats; ++run)); do
  echo "--- run $run"
  /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KiB" "${prepare[@]}"
done
