#!/usr/bin/env bash
# Installs the dependencies, builds recforge (with the CUDA backend when a toolkit is found) and
# runs the whole test suite. GPU tests skip cleanly on machines without a GPU.
# Usage: tools/run-tests.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
# The fuzz targets, briefly (RECFORGE_FUZZ_SECONDS per target; 0 skips them).
fuzz_seconds=${RECFORGE_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
  "$root/tools/run-fuzz.sh" "$build-fuzz" "$fuzz_seconds"
fi
