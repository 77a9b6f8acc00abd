#!/usr/bin/env bash
# Runs `recforge bench kernels` and its PyTorch equivalents on this machine's GPU and writes the
# joined markdown table (ours vs PyTorch, with the ratio) to OUT.md; both raw tables go beside it.
# Usage: benchmarks/kernels.sh [BUILD_DIR] [OUT.md] [extra args for both, e.g. --repeats 100]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
out=${2:-$here/results/$(date -u +%F)-kernels.md}
shift $(($# < 2 ? $# : 2))
python=${RECFORGE_PYTHON:-/usr/bin/python3}

"$build/recforge" bench kernels --output "${out%.md}-recforge.md" "$@"
"$python" "$here/kernels_pytorch.py" --output "${out%.md}-pytorch.md" "$@"
"$python" "$here/join_kernel_tables.py" "${out%.md}-recforge.md" "${out%.md}-pytorch.md" >"$out"
cat "$out"
