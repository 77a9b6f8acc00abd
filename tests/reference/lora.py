"""PyTorch reference for recforge's LoRA layer (kernels/lora.h).

Usage: lora.py OP DIR, like kernels.py (whose Case helper it reuses). Per case c0_, c1_, ...:
  out = inp·Wᵀ + b + s·(x·Aᵀ)·Bᵀ with x = inp ⊙ keep_scale (the dropout multipliers the C++ test
  took from the CPU dropout op: 0 or 1/(1-p), all 1 without dropout); u = x·Aᵀ; the backward by
  autograd from dout, dA and dB added to their initial values dA0 and dB0.
"""
import sys

import torch

from kernels import Case


def lora(case):
    for sub in case.cases():
        inp = sub.tensor("inp", requires_grad=True)
        a = sub.tensor("a", requires_grad=True)
        b = sub.tensor("b", requires_grad=True)
        weight, bias = sub.tensor("weight"), sub.tensor("bias")
        s = sub.scalar("scale")
        x = inp * sub.tensor("keep_scale")
        u = x @ a.T
        out = inp @ weight.T + bias + s * (u @ b.T)
        out.backward(sub.tensor("dout"))
        sub.write("out", out)
        sub.write("u", u)
        sub.write("dinp", inp.grad)
        sub.write("da", sub.tensor("da0") + a.grad)
        sub.write("db", sub.tensor("db0") + b.grad)


OPS = {"lora": lora}

if __name__ == "__main__":
    op, directory = sys.argv[1], sys.argv[2]
    OPS[op](Case(directory))
