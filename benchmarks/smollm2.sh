#!/usr/bin/env bash
# SmolLM2-135M on the CPU, recforge against PyTorch + transformers + peft on the same GGUF file, the
# same shapes and the same thread count: prefill (128 tokens), greedy decode (64 tokens) and one
# LoRA fine-tuning step (4 × 256 tokens, r 8 on q_proj and v_proj, AdamW). Every workload runs in a
# fresh process on each side, back to back, so each peak resident memory is that workload's
# process; the load average is recorded around each run. Writes OUT_DIR/*.json and prints a
# markdown table (benchmarks/smollm2_table.py).
# Usage: benchmarks/smollm2.sh RECFORGE_BINARY GGUF PYTORCH_PYTHON OUT_DIR [THREADS]
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 RECFORGE_BINARY GGUF PYTORCH_PYTHON OUT_DIR [THREADS]" >&2
  exit 2
fi
recforge=$1 gguf=$2 python=$3 out=$4 threads=${5:-2}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
for precision in fp32 bf16; do
  for mode in prefill decode lora; do
    echo "recforge $mode ($precision)" >&2
    "$recforge" bench llm --model "$gguf" --only "$mode" --threads "$threads" \
      --precision "$precision" --json "$out/recforge-$mode-$precision.json" >&2
  done
done
for mode in prefill decode lora; do
  echo "pytorch $mode" >&2
  "$python" "$here/smollm2_pytorch.py" --gguf "$gguf" --only "$mode" --threads "$threads" \
    >"$out/pytorch-$mode.json"
done
python3 "$here/smollm2_table.py" "$out"
