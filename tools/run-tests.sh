#!/usr/bin/env bash
# Installs the dependencies, builds recforge (with the CUDA backend when a toolkit is found) and
# runs the whole test suite. GPU tests skip cleanly on machines without a GPU.
# Usage: tools/run-tests.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
"$root/tools/install-deps.sh"
# The pretrained model and the independent Python readers of its file (tools/fetch-model.sh,
# tools/reference-venv.sh), cached; without them (no network) their tests skip and say why.
cache=${RECFORGE_CACHE:-$HOME/.cache/recforge}
if [[ -z ${RECFORGE_SMOLLM2_GGUF:-} ]]; then
  if model=$("$root/tools/fetch-model.sh" "$cache/models"); then
    export RECFORGE_SMOLLM2_GGUF=$model
  else
    echo "run-tests: SmolLM2 could not be fetched; the tests that need it skip" >&2
  fi
fi
if [[ -z ${RECFORGE_REFERENCE_PYTHON:-} ]]; then
  if python=$("$root/tools/reference-venv.sh" "$cache/venv"); then
    export RECFORGE_REFERENCE_PYTHON=$python
  else
    echo "run-tests: the reference Python (gguf, tokenizers) could not be set up; its tests skip" >&2
  fi
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
# The fuzz targets, briefly (RECFORGE_FUZZ_SECONDS per target; 0 skips them).
fuzz_seconds=${RECFORGE_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ]; then
  "$root/tools/run-fuzz.sh" "$build-fuzz" "$fuzz_seconds"
fi
