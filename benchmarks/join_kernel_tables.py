#!/usr/bin/env python3
"""Joins the tables of `recforge bench kernels` and kernels_pytorch.py on (kernel, shape, dtype).

Usage: join_kernel_tables.py OURS.md PYTORCH.md > JOINED.md
Prints both reports' header lines, then one row per key of ours: both medians, PyTorch / ours
(> 1: ours is faster), our rate and fraction of peak, and both memory columns.
"""
import sys

COLUMNS = ["kernel", "shape", "dtype", "ms", "rate", "unit", "peak", "memory"]


def read(path):
    headers, rows = [], {}
    for line in open(path):
        line = line.rstrip("\n")
        if not line.startswith("|"):
            if line and not line.startswith("#"):
                headers.append(line)
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == "kernel" or cells[0].startswith("---"):
            continue
        row = dict(zip(COLUMNS, cells))
        rows[(row["kernel"], row["shape"], row["dtype"])] = row
    return headers, rows


def main():
    ours_headers, ours = read(sys.argv[1])
    torch_headers, theirs = read(sys.argv[2])
    print("# recforge vs PyTorch kernels\n")
    for line in ours_headers + torch_headers:
        print(f"{line}  ")
    print("\n| kernel | shape | dtype | ours ms | PyTorch ms | PyTorch / ours | ours rate | unit "
          "| ours % of peak | ours MiB | PyTorch MiB |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for key, row in ours.items():
        other = theirs.get(key, {})
        ratio = f"{float(other['ms']) / float(row['ms']):.2f}" if other else ""
        print(f"| {row['kernel']} | {row['shape']} | {row['dtype']} "
              f"| {row['ms']} | {other.get('ms', '')} | {ratio} | {row['rate']} | {row['unit']} "
              f"| {row['peak']} | {row['memory']} | {other.get('memory', '')} |")


if __name__ == "__main__":
    main()
