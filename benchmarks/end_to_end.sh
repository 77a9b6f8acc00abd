#!/usr/bin/env bash
# End-to-end training-step benchmark (issue 6): for each preset (beauty, gpt2-small) this runs, in
# one go on this machine, recforge fp32 and bf16 (`recforge bench train-step`) and PyTorch eager
# fp32 and bf16 and torch.compile bf16 (benchmarks/train_step_pytorch.py), and writes one markdown
# table: ms/step, tokens/s, model TFLOP/s, MFU against the GEMM peak each process measured, and the
# speedup against PyTorch eager of the same preset and precision. A row that fails (out of memory,
# no torch.compile, no bf16 path) is reported in the table; the script goes on.
# Without a GPU (or with --device cpu) it is a smoke run: small overrides, few steps.
# Usage: benchmarks/end_to_end.sh [BUILD_DIR] [--out FILE.md] [--device auto|cuda|cpu]
#                                 [--steps N] [--warmup N] [--timeout SECONDS_PER_ROW]
#   RECFORGE_PYTHON: the Python with PyTorch (default: the first of python3, /usr/bin/python3 that
#   imports torch). Each row's JSON and log go to FILE-runs/ beside --out (or a temporary folder).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
out="" device=auto steps="" warmup="" row_timeout=600
if [[ $# -gt 0 && $1 != --* ]]; then build=$1; shift; fi
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --timeout) row_timeout=$2; shift 2 ;;
    *) echo "end_to_end.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [[ $device == auto ]]; then
  device=cpu
  nvidia-smi -L 2>/dev/null | grep -q "^GPU" && device=cuda
fi
python=${RECFORGE_PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c "import torch" 2>/dev/null; then python=$candidate; break; fi
  done
  python=${python:-python3}
fi
if [[ -n $out ]]; then
  runs=${out%.md}-runs
  mkdir -p "$runs" "$(dirname "$out")"
else
  runs=$(mktemp -d)
fi

# The full shapes on a GPU; on the CPU, shapes small enough for a smoke run of a few seconds.
declare -A shape
if [[ $device == cuda ]]; then
  shape[beauty]="" shape[gpt2-small]=""
  common=(--device cuda --steps "${steps:-20}" --warmup "${warmup:-3}")
else
  threads=$(nproc)
  shape[beauty]="--sequences 8 --length 16 --vocab 1000"
  shape[gpt2-small]="--layers 2 --d-model 128 --heads 2 --sequences 2 --length 64 --vocab 2000"
  common=(--device cpu --threads "$threads" --steps "${steps:-3}" --warmup "${warmup:-1}"
          --peak-size 512)
fi

manifest=$runs/manifest.tsv
: >"$manifest"
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
# The table of the rows so far, to stdout with --final; rewritten into --out after every row, so a
# run stopped from outside still leaves the rows it finished.
write_table() {
  local table
  table=$("$python" "$here/end_to_end_table.py" "$manifest" --commit "$commit" \
    --timeout "$row_timeout") || return 1
  [[ -z $out ]] || echo "$table" >"$out"
  [[ ${1:-} != --final ]] || echo "$table"
}

# run_row PRESET IMPLEMENTATION PRECISION COMMAND...: runs one row, its JSON and log in $runs.
run_row() {
  local preset=$1 impl=$2 precision=$3; shift 3
  local name=$preset-$impl-$precision
  echo "== $(date +%T) $name" >&2
  timeout "$row_timeout" "$@" --preset "$preset" --precision "$precision" "${common[@]}" \
    ${shape[$preset]} --json "$runs/$name.json" >"$runs/$name.log" 2>&1
  local status=$?
  [[ $status -eq 0 ]] || rm -f "$runs/$name.json"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$preset" "$impl" "$precision" "$status" \
    "$runs/$name.json" "$runs/$name.log" >>"$manifest"
  write_table
}

# torch.compile rows last: their compilation is the slowest part.
for preset in beauty gpt2-small; do
  run_row "$preset" recforge fp32 "$build/recforge" bench train-step
  run_row "$preset" recforge bf16 "$build/recforge" bench train-step
  run_row "$preset" pytorch-eager fp32 "$python" "$here/train_step_pytorch.py"
  run_row "$preset" pytorch-eager bf16 "$python" "$here/train_step_pytorch.py"
done
for preset in beauty gpt2-small; do
  run_row "$preset" pytorch-compile bf16 "$python" "$here/train_step_pytorch.py" --compile
done
write_table --final
