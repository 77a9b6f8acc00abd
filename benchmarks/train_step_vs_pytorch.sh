#!/usr/bin/env bash
# Times the benchmark training step in recforge and in PyTorch on this machine, with the same
# number of CPU threads, and prints both medians and their ratio.
# Usage: benchmarks/train_step_vs_pytorch.sh [BUILD_DIR] [THREADS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
threads=${2:-$(nproc)}
python=${RECFORGE_PYTHON:-/usr/bin/python3}

ours=$("$build/recforge" bench train-step --device cpu --threads "$threads")
theirs=$(OMP_NUM_THREADS=$threads "$python" "$here/train_step_pytorch.py" --threads "$threads")
ours_ms=$(head -n1 <<<"$ours" | cut -d' ' -f1)
theirs_ms=$(head -n1 <<<"$theirs" | cut -d' ' -f1)
echo "recforge: $ours_ms ms   ($(sed -n 2p <<<"$ours"))"
echo "pytorch:  $theirs_ms ms   ($(sed -n 2p <<<"$theirs"))"
awk -v a="$ours_ms" -v b="$theirs_ms" 'BEGIN { printf "speedup: %.2fx (pytorch / recforge)\n", b / a }'
