#!/usr/bin/env bash
# `recforge bench train-step` (or its PyTorch twin) at a tiny shape on the CPU: the first line is
# "N ms", and --json holds every field, finite, with the FLOPs of tools/model_flops.h.
# Usage: bench_train_step_json.sh PYTHON RECFORGE|pytorch
#   pytorch: benchmarks/train_step_pytorch.py under PYTHON; skipped (77) without torch.
set -uo pipefail
python=$1 impl=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ $impl == pytorch ]]; then
  "$python" -c "import torch" 2>/dev/null || { echo "SKIP: $python has no torch"; exit 77; }
  command=("$python" "$root/benchmarks/train_step_pytorch.py")
else
  command=("$impl" bench train-step)
fi
output=$("${command[@]}" --preset gpt2-small --layers 1 --d-model 64 --heads 2 --sequences 2 \
  --length 16 --vocab 300 --steps 2 --warmup 1 --peak-size 128 --threads 1 \
  --json "$work/step.json" 2>&1)
status=$?
echo "$output"
[[ $status -eq 0 ]] || { echo "FAIL: exit status $status"; exit 1; }
if ! head -n1 <<<"$output" | grep -Eq '^[0-9]+\.[0-9]+ ms$'; then
  echo "FAIL: the first line is not \"N ms\""
  exit 1
fi
"$python" - "$work/step.json" <<'CHECK'
import json, math, sys
r = json.load(open(sys.argv[1]))
positive = ["ms", "ms_min", "ms_max", "tokens_per_s", "flops_per_step", "forward_flops_per_step",
            "attention_flops_per_step", "achieved_tflops", "peak_tflops", "peak_fp32_tflops", "mfu",
            "mfu_own_precision"]
for key in positive:
    assert key in r, f"missing {key}"
    assert isinstance(r[key], (int, float)) and math.isfinite(r[key]) and r[key] > 0, \
        f"{key} = {r[key]!r} is not a positive finite number"
for key in ["implementation", "device", "device_name", "precision", "peak_method",
            "peak_precision"]:
    assert isinstance(r.get(key), str) and r[key], f"{key} missing or empty"
for key in ["peak_bf16_tflops", "peak_tf32_tflops"]:
    assert key in r, f"missing {key}"
shape = dict(preset="gpt2-small", layers=1, d_model=64, heads=2, sequences=2, length=16, vocab=300,
             tokens_per_step=32, steps=2, warmup=1, precision="fp32", device="cpu")
for key, value in shape.items():
    assert r.get(key) == value, f"{key} = {r.get(key)!r}, expected {value!r}"
# tools/model_flops.h: 3 × (2·P_mm·N + 4·L·C·Σ keys), P_mm = L·12·C² + V·C,
# causal keys T(T+1)/2 per sequence.
p_mm = 1 * 12 * 64 * 64 + 300 * 64
flops = 3 * (2 * p_mm * 32 + 4 * 1 * 64 * 2 * 16 * 17 / 2)
assert r["matmul_parameters"] == p_mm, r["matmul_parameters"]
assert abs(r["flops_per_step"] - flops) <= 1e-9 * flops, (r["flops_per_step"], flops)
assert abs(r["achieved_tflops"] - flops / (r["ms"] * 1e9)) <= 1e-6 * r["achieved_tflops"]
assert abs(r["mfu"] - r["achieved_tflops"] / r["peak_tflops"]) <= 1e-9
print("PASS:", r["implementation"], f"{r['ms']:.2f} ms, MFU {100 * r['mfu']:.1f}%")
CHECK
