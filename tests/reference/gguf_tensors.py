"""Reference for the GGUF reader: tensors of a GGUF file dequantized by the `gguf` package.

Usage: gguf_tensors.py FILE OUT_DIR NAME...
Writes OUT_DIR/ref_<i>.npy for the i-th NAME: float32, in the row-major (PyTorch) shape, i.e. the
GGUF dimensions reversed, as gguf.quants.dequantize computes it from GGUFReader's raw data.
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main(path: str, out_dir: str, names: list[str]) -> None:
    reader = GGUFReader(path)
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    for i, name in enumerate(names):
        if name not in tensors:
            sys.exit(f"{path}: no tensor named {name}")
        tensor = tensors[name]
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(tensor.shape))
        np.save(Path(out_dir) / f"ref_{i}.npy", np.ascontiguousarray(values.reshape(shape)))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
