"""PyTorch reference of recforge's decoder (the method of llm.c's test_gpt2).

Usage: model.py decoder DIR. Reads the configuration, the packed batch and every parameter tensor a
C++ test wrote to DIR, builds the same model in float64, and writes the logits, the loss, the
gradient of every parameter and the losses of a few AdamW steps as DIR/ref_*.npy.
"""
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

from training_reference import write_step_references

torch.set_default_dtype(torch.float64)


def load(directory, name):
    return np.load(pathlib.Path(directory) / f"{name}.npy")


def parameter_names(n_layer):
    names = ["wte", "wpe"]
    for l in range(n_layer):
        h = f"h.{l}."
        names += [h + s for s in ("ln_1.weight", "ln_1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                  "attn.out.weight", "attn.out.bias", "ln_2.weight", "ln_2.bias",
                                  "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight",
                                  "mlp.proj.bias")]
    return names + ["ln_f.weight", "ln_f.bias"]


def attention(qkv, offsets, n_head, causal):
    """Per-sequence multi-head attention over the packed [N, 3C] projections."""
    n, three_c = qkv.shape
    c = three_c // 3
    hs = c // n_head
    outputs = []
    for b in range(len(offsets) - 1):
        begin, end = int(offsets[b]), int(offsets[b + 1])
        if end == begin:
            continue
        t = end - begin
        q, k, v = qkv[begin:end].view(t, 3, n_head, hs).permute(1, 2, 0, 3)  # each [NH, T, HS]
        scores = q @ k.transpose(-1, -2) / math.sqrt(hs)
        if causal:
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # [NH, T, HS]
        outputs.append(out.permute(1, 0, 2).reshape(t, c))
    return torch.cat(outputs, dim=0)


def forward(p, tokens, positions, offsets, n_layer, n_head, causal):
    """Hidden states [N, C] after the final layer norm."""
    c = p["wte"].shape[1]
    x = p["wte"][tokens] + p["wpe"][positions]
    for l in range(n_layer):
        h = f"h.{l}."
        ln1 = F.layer_norm(x, (c,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps=1e-5)
        qkv = F.linear(ln1, p[h + "attn.qkv.weight"], p[h + "attn.qkv.bias"])
        att = attention(qkv, offsets, n_head, causal)
        x = x + F.linear(att, p[h + "attn.out.weight"], p[h + "attn.out.bias"])
        ln2 = F.layer_norm(x, (c,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps=1e-5)
        fc = F.gelu(F.linear(ln2, p[h + "mlp.fc.weight"], p[h + "mlp.fc.bias"]), approximate="tanh")
        x = x + F.linear(fc, p[h + "mlp.proj.weight"], p[h + "mlp.proj.bias"])
    return F.layer_norm(x, (c,), p["ln_f.weight"], p["ln_f.bias"], eps=1e-5)


def decoder(directory):
    scalar = lambda name: float(load(directory, name))
    n_layer, n_head = int(scalar("n_layer")), int(scalar("n_head"))
    causal = scalar("causal") != 0.0
    tokens = torch.from_numpy(load(directory, "tokens").astype(np.int64))
    positions = torch.from_numpy(load(directory, "positions").astype(np.int64))
    offsets = load(directory, "offsets")
    targets = torch.from_numpy(load(directory, "targets").astype(np.int64))
    names = parameter_names(n_layer)
    p = {name: torch.from_numpy(load(directory, "param." + name).astype(np.float64))
         .requires_grad_(True) for name in names}

    def loss_and_logits():
        hidden = forward(p, tokens, positions, offsets, n_layer, n_head, causal)
        logits = hidden @ p["wte"].t()
        return F.cross_entropy(logits, targets, ignore_index=-1), logits

    write_step_references(directory, loss_and_logits, p, names, scalar)


if __name__ == "__main__":
    {"decoder": decoder}[sys.argv[1]](sys.argv[2])
