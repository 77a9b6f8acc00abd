"""PyTorch references for recforge's kernels under the bf16 precision policy (attention, layernorm,
gelu with bf16 storage).

Usage: bf16_ops.py OP DIR, like kernels.py (whose Case helper it reuses). The policy written in
torch: bf16 inputs arrive as their (exactly representable) float32 values, the math is float32,
and each bf16 output is the float32 result rounded once with .bfloat16() (round to nearest even);
fp32 outputs (lse, mean, rstd, the residual) stay float32. Everything is written back as float64.
Only uses what both PyTorch 1.13 (Debian) and 2.x provide.
"""
import math
import sys

import torch
import torch.nn.functional as F

from kernels import LAYERNORM_EPS, Case


def f32(case, name, requires_grad=False):
    return case.tensor(name).float().requires_grad_(requires_grad)


def bf16(t):
    """t rounded once to bf16, as float64 for writing."""
    return t.detach().bfloat16().double()


def attention_bf16(case):
    """Per case, packed multi-head attention (offsets shared by every case) on bf16 qkv and dout:
    out = softmax(mask(q·kᵀ/√HS))·v rounded to bf16, lse = logsumexp of the masked scaled scores
    (float32). The backward in the form of the flash kernels, from the stored outputs: with the
    bf16 out, D = rowsum(dout ⊙ out), dS = P ⊙ (dout·vᵀ − D), dq = dS·k/√HS, dk = dSᵀ·q/√HS,
    dv = Pᵀ·dout, each rounded to bf16."""
    offsets = case.ints("offsets").tolist()
    for sub in case.cases():
        NH, HS = int(sub.scalar("NH")), int(sub.scalar("HS"))
        causal = sub.scalar("causal") != 0
        scale = 1.0 / math.sqrt(HS)
        heads = f32(sub, "qkv").permute(1, 2, 0, 3)  # [3, NH, N, HS]
        dout_heads = f32(sub, "dout").permute(1, 0, 2)  # [NH, N, HS]
        outs, lses, grads = [], [], []
        for begin, end in zip(offsets[:-1], offsets[1:]):
            T = end - begin
            if T == 0:
                continue
            q, k, v = heads[:, :, begin:end]  # each [NH, T, HS]
            dout = dout_heads[:, begin:end]
            scores = q @ k.transpose(1, 2) * scale
            if causal:
                above = torch.ones(T, T, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(above, -math.inf)
            p = torch.softmax(scores, dim=-1)
            out = (p @ v).bfloat16().float()
            delta = (dout * out).sum(dim=-1, keepdim=True)
            dscores = p * (dout @ v.transpose(1, 2) - delta)
            dq = dscores @ k * scale
            dk = dscores.transpose(1, 2) @ q * scale
            dv = p.transpose(1, 2) @ dout
            lses.append(torch.logsumexp(scores, dim=-1).T)  # [T, NH]
            outs.append(out.transpose(0, 1))  # [T, NH, HS]
            grads.append(torch.stack([dq, dk, dv]).permute(2, 0, 1, 3))  # [T, 3, NH, HS]
        sub.write("out", torch.cat(outs).double())
        sub.write("lse", torch.cat(lses).double())
        sub.write("dqkv", bf16(torch.cat(grads)))


def layernorm_bf16(case):
    """Per case: out = layer_norm(inp) rounded to bf16, mean and rstd (biased variance) in float32;
    the fused variant's residual = a + b (float32) and its layer norm rounded to bf16."""
    for sub in case.cases():
        x, weight, bias = f32(sub, "inp"), f32(sub, "weight"), f32(sub, "bias")
        C = x.shape[-1]
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1)
        sub.write("out", bf16(F.layer_norm(x, (C,), weight, bias, eps=LAYERNORM_EPS)))
        sub.write("mean", mean.squeeze(-1).double())
        sub.write("rstd", (1.0 / torch.sqrt(var + LAYERNORM_EPS)).double())
        residual = f32(sub, "a") + f32(sub, "b")
        sub.write("residual", residual.double())
        sub.write("residual_out",
                  bf16(F.layer_norm(residual, (C,), weight, bias, eps=LAYERNORM_EPS)))


def gelu_bf16(case):
    """out = gelu_tanh(inp) rounded to bf16 (inp bf16); dinp = gelu_tanh'(inp)·dout rounded to
    bf16 (inp bf16, dout float32), by autograd."""
    x = f32(case, "inp", requires_grad=True)
    out = F.gelu(x, approximate="tanh")
    out.backward(f32(case, "dout"))
    case.write("out", bf16(out))
    case.write("dinp", bf16(x.grad))


OPS = {"attention_bf16": attention_bf16, "layernorm_bf16": layernorm_bf16, "gelu_bf16": gelu_bf16}

if __name__ == "__main__":
    op, directory = sys.argv[1], sys.argv[2]
    OPS[op](Case(directory))
