#!/usr/bin/env bash
# The TALLRec table (issue 16): SmolLM2-135M-Instruct on TALLRec's movie or book prompts —
# zero-shot, in-context, and LoRA SFT on few-shot training sets — one run directory per row under
# OUT; benchmarks/tallrec_table.py turns them into the markdown table.
# Usage: benchmarks/tallrec.sh RECFORGE OUT [movie|book] [SHOTS...] [-- SEEDS...]
#   VALID_COUNT  validation examples (second half of *_valid.json) choosing the epoch (default 500)
#   TEST_LIMIT   test examples (0: all)
#   IN_CONTEXT   demonstrations of the in-context row (0: no in-context row)
set -euo pipefail
recforge=$1 out=$2 domain=${3:-movie}
shift $(( $# >= 3 ? 3 : $# ))
shots=() seeds=()
while [[ $# -gt 0 && $1 != -- ]]; do shots+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
seeds=("$@")
[[ ${#shots[@]} -gt 0 ]] || shots=(16 64 256)
[[ ${#seeds[@]} -gt 0 ]] || seeds=(1 2 3)
data=${RECFORGE_DATA_DIR:-../shared/data}/tallrec
valid_count=${VALID_COUNT:-500} test_limit=${TEST_LIMIT:-0} in_context=${IN_CONTEXT:-0}
half=$(( $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" \
  "$data/${domain}_valid.json") / 2 ))
mkdir -p "$out"
limit_flag=()
[[ $test_limit -gt 0 ]] && limit_flag=(--limit "$test_limit")
if [[ ! -s $out/zero-shot.json ]]; then
  "$recforge" eval --model smollm2-135m-instruct --task preference \
    --prompts "$data/${domain}_test.json" "${limit_flag[@]}" > "$out/zero-shot.json.tmp"
  mv "$out/zero-shot.json.tmp" "$out/zero-shot.json"
fi
if [[ $in_context -gt 0 && ! -s $out/in-context-$in_context.json ]]; then
  "$recforge" eval --model smollm2-135m-instruct --task preference \
    --prompts "$data/${domain}_test.json" "${limit_flag[@]}" --in-context "$in_context" \
    --demonstrations "$data/${domain}_valid.json" > "$out/in-context-$in_context.json.tmp"
  mv "$out/in-context-$in_context.json.tmp" "$out/in-context-$in_context.json"
fi
for seed in "${seeds[@]}"; do
  for n in "${shots[@]}"; do
    run=$out/sft-$n-seed$seed
    [[ -s $run/final_metrics-sft.json ]] && continue
    resume=()
    [[ -d $run/checkpoints ]] && resume=(--resume)
    "$recforge" train configs/tallrec-movie.yaml "${resume[@]}" run.output_dir="$run" \
      run.seed="$seed" prompts.shots="$n" prompts.shots_seed="$seed" \
      prompts.train="$data/${domain}_valid.json" prompts.train_count="$half" \
      prompts.valid="$data/${domain}_valid.json" prompts.valid_first="$half" \
      prompts.valid_count="$valid_count" prompts.test="$data/${domain}_test.json" \
      prompts.test_limit="$test_limit" 2>&1 | tr '\r' '\n' | grep -v "examples, " > "$run.log"
  done
done
