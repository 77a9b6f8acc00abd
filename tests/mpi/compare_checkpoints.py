"""Compares the parameters of two recforge checkpoints (model.safetensors): prints the relative
difference ||a - b|| / ||a|| over all tensors and exits 1 when it exceeds the tolerance.
Usage: compare_checkpoints.py CHECKPOINT_A CHECKPOINT_B [TOLERANCE]"""
import json
import math
import struct
import sys


def tensors(checkpoint):
    with open(f"{checkpoint}/model.safetensors", "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    result = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        result[name] = struct.unpack(f"<{(end - begin) // 4}f", data[begin:end])
    return result


def main(a_dir, b_dir, tolerance=1e-6):
    a, b = tensors(a_dir), tensors(b_dir)
    if a.keys() != b.keys():
        sys.exit(f"the checkpoints hold different tensors: {sorted(a.keys() ^ b.keys())}")
    diff = norm = 0.0
    for name in a:
        diff += sum((x - y) ** 2 for x, y in zip(a[name], b[name]))
        norm += sum(x * x for x in a[name])
    relative = math.sqrt(diff) / math.sqrt(norm)
    print(f"[ rel_err ] parameters {a_dir} vs {b_dir}: {relative:.3g}")
    sys.exit(0 if relative <= float(tolerance) else 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
