"""The markdown table of benchmarks/end_to_end.sh from its manifest of rows.

Each manifest line is `preset<TAB>implementation<TAB>precision<TAB>exit status<TAB>json<TAB>log`;
a row that succeeded has the JSON of `recforge bench train-step --json` or
`train_step_pytorch.py --json` (the same fields), a failed one is shown with the last line of its
log. The speedup of a row is the median step time of PyTorch eager at the same preset and precision
divided by the row's.
"""
import argparse
import datetime
import json
import math


def read_rows(manifest):
    rows = []
    with open(manifest) as lines:
        for line in lines:
            preset, impl, precision, status, json_path, log_path = line.rstrip("\n").split("\t")
            row = dict(preset=preset, impl=impl, precision=precision, status=int(status))
            if row["status"] == 0:
                try:
                    with open(json_path) as record:
                        row["result"] = json.load(record)
                except (OSError, ValueError) as error:
                    row["error"] = f"no result ({error})"
            else:
                row["error"] = last_line(log_path)
            rows.append(row)
    presets = list(dict.fromkeys(row["preset"] for row in rows))
    # Grouped by preset, in the order the rows ran within each (sorted() is stable).
    return sorted(rows, key=lambda row: presets.index(row["preset"]))


def last_line(log_path):
    try:
        with open(log_path, errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def describe(result):
    return (f"{result['sequences']} x {result['length']} tokens, d_model {result['d_model']}, "
            f"{result['layers']} layers, {result['heads']} heads, vocabulary {result['vocab']}")


def number(value, digits):
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    return f"{value:.{digits}f}" if finite else "-"


def table(rows, commit, timeout):
    results = [row["result"] for row in rows if "result" in row]
    devices = sorted({r["device_name"] for r in results}) or ["(no row succeeded)"]
    lines = [
        "# End-to-end training step: recforge vs PyTorch",
        "",
        f"{', '.join(devices)}; commit {commit}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    for preset in dict.fromkeys(row["preset"] for row in rows):
        shapes = [r for r in results if r["preset"] == preset]
        if shapes:
            lines.append(f"- {preset}: {describe(shapes[0])}; "
                         f"{shapes[0]['flops_per_step']:.4g} model FLOPs per step.")
    if results:
        r = results[0]
        lines.append(f"- Median of {r['steps']} steps after {r['warmup']} warm-up, host clock "
                     "around a synchronized step (forward, full-softmax loss, backward, clipping, "
                     "AdamW).")
    lines += [
        "- TFLOP/s: model FLOPs (tools/model_flops.h: 3 x forward, 2 FLOPs per weight per token "
        "plus causal attention) per second. MFU: that over the peak each process measured "
        "(cuBLAS/torch.mm bf16 GEMM on a GPU, fp32 GEMM on a CPU), shown in the peak column.",
        "- Speedup: PyTorch eager at the same preset and precision / the row "
        "(greater than 1: faster than eager).",
        "",
        "| preset | impl | precision | ms/step | tokens/s | TFLOP/s | MFU | peak TFLOP/s | "
        "speedup vs eager |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    eager = {(row["preset"], row["precision"]): row["result"]["ms"] for row in rows
             if row["impl"] == "pytorch-eager" and "result" in row}
    for row in rows:
        head = f"| {row['preset']} | {row['impl']} | {row['precision']} |"
        if "result" not in row:
            why = f"timed out after {timeout} s" if row["status"] in (124, 137) else row["error"]
            lines.append(f"{head} failed: {why.replace('|', '/')} | | | | | | |")
            continue
        r = row["result"]
        base = eager.get((row["preset"], row["precision"]))
        speedup = f"{base / r['ms']:.2f}x" if base else "-"
        lines.append(f"{head} {number(r['ms'], 2)} | {number(r['tokens_per_s'], 0)} | "
                     f"{number(r['achieved_tflops'], 3)} | {number(100 * r['mfu'], 1)}% | "
                     f"{r['peak_tflops']:.4g} {r['peak_precision']} | {speedup} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest")
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--timeout", default="?", help="the per-row limit, for timed-out rows")
    args = parser.parse_args()
    print(table(read_rows(args.manifest), args.commit, args.timeout))


if __name__ == "__main__":
    main()
