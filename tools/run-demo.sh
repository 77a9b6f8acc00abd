#!/usr/bin/env bash
# Installs the dependencies, builds recforge and runs the bundled default job end to end: generate
# interaction logs with planted sequential structure, prepare them into a dataset, pre-train with
# masked and next-K behavior prediction (configs/synthetic.yaml; the GPU when there is one, else
# the CPU), then evaluate the best checkpoint and recommend for one user.
# Usage: tools/run-demo.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)" --target recforge
cd "$root"
"$build/recforge" data synth --output runs/synthetic-logs.csv
"$build/recforge" data prepare --input runs/synthetic-logs.csv --format csv --header \
  --output data/synthetic --overwrite
run=runs/synthetic-$(date +%Y%m%d-%H%M%S)
"$build/recforge" train configs/synthetic.yaml run.output_dir="$run"
"$build/recforge" eval --run "$run" --protocol sampled
"$build/recforge" recommend --run "$run" --user u1 --k 5
