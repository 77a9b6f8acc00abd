"""PyTorch references for recforge's bf16 mixed precision (kernels/convert.h, kernels/matmul.h).

Usage: bf16.py OP DIR, like kernels.py (whose Case helper it reuses). Unlike kernels.py this script
works in float32 and bfloat16, as the precision policy does: bf16-rounded inputs (.bfloat16()) are
upcast to float32, the math runs in float32, and a bf16 output is rounded once with .bfloat16().
Bit patterns travel as integers stored in float64 (exact below 2^53).
  convert: bf16_bits = the bits of floats.bfloat16(); float_bits = the bits of the bf16 patterns
           `bits` widened to float32.
  matmul:  per case c0_, c1_, ... the dense layer with bf16 operands (fp32 or bf16 output and
           input gradient; fp32 weight/bias gradients added to dweight0/dbias0), and the pure
           float32 layer on the unrounded inputs (suffix _fp32).
Only uses what both PyTorch 1.13 (Debian) and 2.x provide.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

from kernels import Case


def float32(case, name):
    """The array exactly as written (float32 bits kept: NaN payloads, subnormals)."""
    return torch.from_numpy(np.ascontiguousarray(case.load(name), dtype=np.float32))


def bf16_bits(x):
    """The 16-bit patterns of a bfloat16 tensor as non-negative integers."""
    return x.view(torch.int16).to(torch.int32) & 0xFFFF


def convert(case):
    case.write("bf16_bits", bf16_bits(float32(case, "floats").bfloat16()))
    patterns = torch.from_numpy(case.load("bits").astype(np.int16))  # 0..65535 wrap to int16
    widened = patterns.view(torch.bfloat16).float()
    case.write("float_bits", widened.view(torch.int32).numpy().view(np.uint32))


def rounded(t):
    """The float32 values t keeps when stored as bf16."""
    return t.bfloat16().float()


def matmul(case):
    for sub in case.cases():
        inp, weight, bias = (float32(sub, n) for n in ("inp", "weight", "bias"))
        dout, dweight0, dbias0 = (float32(sub, n) for n in ("dout", "dweight0", "dbias0"))
        inp_r, weight_r, dout_r = rounded(inp), rounded(weight), rounded(dout)
        # Forward: fp32 output with an fp32 bias, bf16 output with a bf16 bias (the output's type).
        sub.write("out_f32", F.linear(inp_r, weight_r, bias))
        sub.write("out_f32_nobias", F.linear(inp_r, weight_r))
        sub.write("out_bf16", F.linear(inp_r, weight_r, rounded(bias)).bfloat16().float())
        sub.write("out_bf16_nobias", F.linear(inp_r, weight_r).bfloat16().float())
        # Backward: dinp in fp32 or rounded to bf16; fp32 weight and bias gradients accumulated.
        dinp = dout_r @ weight_r
        sub.write("dinp_f32", dinp)
        sub.write("dinp_bf16", dinp.bfloat16().float())
        sub.write("dweight", dweight0 + dout_r.T @ inp_r)
        sub.write("dbias", dbias0 + dout_r.sum(0))
        # The pure fp32 layer on the unrounded inputs.
        sub.write("out_fp32", F.linear(inp, weight, bias))
        sub.write("out_fp32_nobias", F.linear(inp, weight))
        sub.write("dinp_fp32", dout @ weight)
        sub.write("dweight_fp32", dweight0 + dout.T @ inp)
        sub.write("dbias_fp32", dbias0 + dout.sum(0))


OPS = {"convert": convert, "matmul": matmul}

if __name__ == "__main__":
    op, directory = sys.argv[1], sys.argv[2]
    OPS[op](Case(directory))
