#!/usr/bin/env bash
# Installs the dependencies, builds recforge and runs the bundled default job: a short training
# run on generated behavior sequences (on the GPU when there is one, else the CPU).
# Usage: tools/run-demo.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)" --target recforge
"$build/recforge" demo --device auto
