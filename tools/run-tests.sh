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
