#!/usr/bin/python3
"""Prints a markdown table of recforge runs' final_metrics.json (test metrics at the best
validation checkpoint) and their training time per epoch.

Usage: benchmarks/summarize_runs.py RUN_DIR [RUN_DIR ...]
"""
import json
import sys
from pathlib import Path


def row(run):
    m = json.loads((Path(run) / "final_metrics.json").read_text())
    epochs = max(m["epochs"], 1)
    return ("| {name} | {hr10:.4f} | {ndcg10:.4f} | {shr10:.4f} | {sndcg10:.4f} | {vndcg10:.4f} | "
            "{best} | {epochs} | {spe:.1f} |").format(
        name=Path(run).name, hr10=m["test/hr@10"], ndcg10=m["test/ndcg@10"],
        shr10=m["test_sampled/hr@10"], sndcg10=m["test_sampled/ndcg@10"],
        vndcg10=m["valid/ndcg@10"], best=m["best_step"], epochs=m["epochs"],
        spe=m["train_seconds"] / epochs)


print("| run | test HR@10 | test NDCG@10 | sampled HR@10 | sampled NDCG@10 | valid NDCG@10 | "
      "best step | epochs | train s/epoch |")
print("|---|---|---|---|---|---|---|---|---|")
for run in sys.argv[1:]:
    print(row(run))
