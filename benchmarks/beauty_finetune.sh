#!/usr/bin/env bash
# The Beauty fine-tuning table: configs/beauty-pipeline.yaml (pre-training → SFT with LoRA → DPO
# sigmoid), then two variants from the same checkpoints: full SFT from the pre-trained model and
# S-DPO (3 rejected items) from the LoRA SFT model. Prints test HR@1, HR@10 and NDCG@10 (full
# ranking, each user's earlier items excluded) of every stage as a markdown table.
# Usage: benchmarks/beauty_finetune.sh BUILD_DIR OUT_DIR [key=value overrides for every run...]
set -euo pipefail
build=$1
out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
recforge="$build/recforge"

best_checkpoint() {  # RUN_DIR STAGE
  python3 -c 'import json, sys; d, s = sys.argv[1:]
print(f"{d}/checkpoints/" + json.load(open(f"{d}/final_metrics-{s}.json"))["best_checkpoint"])' "$1" "$2"
}

"$recforge" train "$here/../configs/beauty-pipeline.yaml" "run.output_dir=$out/pipeline" "$@"
"$recforge" train "$here/beauty_finetune/sft_full.yaml" "run.output_dir=$out/sft-full" \
  "stages.0.init=$(best_checkpoint "$out/pipeline" pretrain)" "$@"
"$recforge" train "$here/beauty_finetune/dpo_sdpo.yaml" "run.output_dir=$out/dpo-sdpo" \
  "stages.0.init=$(best_checkpoint "$out/pipeline" sft)" "$@"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = [("pre-training (NBP)", "pipeline", "pretrain"), ("SFT, LoRA r=8", "pipeline", "sft"),
        ("SFT, full", "sft-full", "sft_full"), ("DPO sigmoid (after LoRA SFT)", "pipeline", "dpo"),
        ("S-DPO, 3 rejected (after LoRA SFT)", "dpo-sdpo", "dpo_sdpo")]
print("| stage | test HR@1 | test HR@10 | test NDCG@10 | valid NDCG@10 |")
print("|---|---|---|---|---|")
for name, run, stage in rows:
    m = json.load(open(f"{out}/{run}/final_metrics-{stage}.json"))
    print(f"| {name} | {m['test/hr@1']:.4f} | {m['test/hr@10']:.4f} | {m['test/ndcg@10']:.4f} "
          f"| {m['valid/ndcg@10']:.4f} |")
PY
