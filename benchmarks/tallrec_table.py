"""The TALLRec table from benchmarks/tallrec.sh's run directories: test AUC of zero-shot,
in-context and LoRA SFT at each shot count and seed (mean when several seeds), beside TALLRec's
published LLaMA-7B numbers and their sequential baselines.

Usage: tallrec_table.py OUT_DIR [movie|book]"""
import glob
import json
import os
import re
import statistics
import sys

PUBLISHED = {"movie": {16: 67.24, 64: 67.48, 256: 71.98}, "book": {16: 56.36, 64: 60.39, 256: 64.38}}


def main():
    out, domain = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "movie"
    rows = ["| setting | seeds | test AUC | test accuracy | TALLRec LLaMA-7B AUC |", "|---|---|---|---|---|"]
    zero = os.path.join(out, "zero-shot.json")
    if os.path.exists(zero):
        r = json.load(open(zero))
        rows.append(f"| zero-shot | — | {r['auc']:.4f} | {r['accuracy']:.4f} | — |")
    for path in sorted(glob.glob(os.path.join(out, "in-context-*.json"))):
        r = json.load(open(path))
        k = re.search(r"in-context-(\d+)", path).group(1)
        rows.append(f"| in-context, {k} demonstrations ({r['examples']} test examples) | — | "
                    f"{r['auc']:.4f} | {r['accuracy']:.4f} | — |")
    runs = {}
    for path in glob.glob(os.path.join(out, "sft-*-seed*/final_metrics-sft.json")):
        shots, seed = map(int, re.search(r"sft-(\d+)-seed(\d+)", path).groups())
        runs.setdefault(shots, []).append((seed, json.load(open(path))["test"]))
    for shots in sorted(runs):
        results = sorted(runs[shots])
        aucs = [r["auc"] for _, r in results]
        accs = [r["accuracy"] for _, r in results]
        spread = f" ± {statistics.stdev(aucs):.4f}" if len(aucs) > 1 else ""
        rows.append(f"| LoRA SFT, {shots} shots | {', '.join(str(s) for s, _ in results)} | "
                    f"{statistics.mean(aucs):.4f}{spread} | {statistics.mean(accs):.4f} | "
                    f"{PUBLISHED[domain][shots] / 100:.4f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
