"""The table of benchmarks/smollm2.sh: tokens/s and peak resident memory per workload, recforge
(fp32 and bf16 frozen weights) against PyTorch, from the JSON files in OUT_DIR."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
print("| workload | recforge fp32 tok/s | recforge bf16 tok/s | PyTorch tok/s | fp32 / PyTorch "
      "| recforge fp32 peak MiB | recforge bf16 peak MiB | PyTorch peak MiB |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("prefill", "decode", "lora"):
    ours = {p: json.loads((out / f"recforge-{mode}-{p}.json").read_text()) for p in ("fp32", "bf16")}
    theirs = json.loads((out / f"pytorch-{mode}.json").read_text())["rows"][mode]
    rate = {p: ours[p][f"{mode}_tokens_per_s"] for p in ours}
    # PyTorch's whole-process peak: loading or the workload, whichever was higher.
    pytorch_peak = max(theirs["rss_peak_load_mb"], theirs["peak_rss_mb"])
    print(f"| {mode} | {rate['fp32']:.1f} | {rate['bf16']:.1f} | {theirs['tokens_per_s']:.1f} | "
          f"{rate['fp32'] / theirs['tokens_per_s']:.2f}× | {ours['fp32']['peak_rss_mib']:.0f} | "
          f"{ours['bf16']['peak_rss_mib']:.0f} | {pytorch_peak:.0f} |")
