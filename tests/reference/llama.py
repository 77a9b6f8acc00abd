"""PyTorch reference of recforge's Llama model (model/llama/model.h), llm.c's test_gpt2 method.

Usage: llama.py model DIR. Reads the configuration, the packed batch, every parameter tensor (and
LoRA adapter, when the test adds them) a C++ test wrote to DIR, builds the same model in float64 the
way Hugging Face's LlamaForCausalLM computes it (RMSNorm, rotate-half rotary embeddings with fp32
angles, grouped-query attention by repeating the key/value heads, SwiGLU), and writes the logits,
the loss, the gradient of every trained tensor and the losses of a few AdamW steps as DIR/ref_*.npy.
"""
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

from training_reference import save, write_step_references

torch.set_default_dtype(torch.float64)

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def load(directory, name):
    return np.load(pathlib.Path(directory) / f"{name}.npy")


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, positions, rotary_dim, base):
    """x [N, heads, HS]; the first rotary_dim channels of each head rotate, as transformers does."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]  # fp32, like transformers
    emb = torch.cat((angles, angles), dim=-1).double()
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat((rot * cos + rotate_half(rot) * sin, rest), dim=-1)


def attention(q, k, v, offsets, causal):
    """q [N, H, HS], k and v [N, KV, HS] → [N, H·HS], per packed sequence."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    outputs = []
    for begin, end in zip(offsets[:-1], offsets[1:]):
        begin, end = int(begin), int(end)
        if end == begin:
            continue
        qs, ks, vs = (t[begin:end].transpose(0, 1) for t in (q, k, v))  # [H, T, HS]
        scores = qs @ ks.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if causal:
            mask = torch.ones(end - begin, end - begin, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ vs
        outputs.append(out.transpose(0, 1).reshape(end - begin, -1))
    return torch.cat(outputs, dim=0)


class Model:
    def __init__(self, directory):
        self.dir = directory
        s = lambda name: float(load(directory, name))
        self.n_layer, self.n_head, self.n_kv = int(s("n_layer")), int(s("n_head")), int(s("n_kv_head"))
        self.head_dim, self.rotary_dim = int(s("head_dim")), int(s("rotary_dim"))
        self.base, self.eps = s("rope_base"), s("rms_eps")
        self.causal, self.tied = s("causal") != 0.0, s("tied") != 0.0
        self.lora_rank, self.lora_scale = int(s("lora_rank")), s("lora_scale")
        self.scalar = s

    def linear(self, p, prefix, x):
        y = x @ p[prefix + ".weight"].t()
        if prefix + ".lora_A" in p:
            y = y + self.lora_scale * (x @ p[prefix + ".lora_A"].t()) @ p[prefix + ".lora_B"].t()
        return y

    def hidden(self, p, tokens, positions, offsets):
        x = p["model.embed_tokens.weight"][tokens]
        n, hd = x.shape[0], self.head_dim
        for l in range(self.n_layer):
            pre = f"model.layers.{l}."
            h = rms_norm(x, p[pre + "input_layernorm.weight"], self.eps)
            q = self.linear(p, pre + "self_attn.q_proj", h).view(n, self.n_head, hd)
            k = self.linear(p, pre + "self_attn.k_proj", h).view(n, self.n_kv, hd)
            v = self.linear(p, pre + "self_attn.v_proj", h).view(n, self.n_kv, hd)
            q, k = rope(q, positions, self.rotary_dim, self.base), rope(k, positions, self.rotary_dim, self.base)
            att = attention(q, k, v, offsets, self.causal)
            x = x + self.linear(p, pre + "self_attn.o_proj", att)
            h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], self.eps)
            act = F.silu(self.linear(p, pre + "mlp.gate_proj", h)) * self.linear(p, pre + "mlp.up_proj", h)
            x = x + self.linear(p, pre + "mlp.down_proj", act)
        return rms_norm(x, p["model.norm.weight"], self.eps)


def read_case(directory):
    """The model, the packed batch (tokens, positions, targets, offsets), every parameter tensor
    (the trained ones requiring grad), their names and the output layer's name."""
    m = Model(directory)
    ints = lambda name: torch.from_numpy(load(directory, name).astype(np.int64))
    tokens, positions, targets = ints("tokens"), ints("positions"), ints("targets")
    offsets = load(directory, "offsets").astype(np.int64)
    names = [line for line in (pathlib.Path(directory) / "names.txt").read_text().split("\n") if line]
    trained = [line for line in (pathlib.Path(directory) / "trained.txt").read_text().split("\n") if line]
    p = {name: torch.from_numpy(load(directory, "param." + name).astype(np.float64)) for name in names}
    for name in trained:
        p[name].requires_grad_(True)
    head = "model.embed_tokens.weight" if m.tied else "lm_head.weight"
    return m, (tokens, positions, targets, offsets), p, trained, head


def model(directory):
    m, (tokens, positions, targets, offsets), p, trained, head = read_case(directory)

    def loss_and_logits():
        logits = m.hidden(p, tokens, positions, offsets) @ p[head].t()
        return F.cross_entropy(logits, targets, ignore_index=-1), logits

    write_step_references(directory, loss_and_logits, p, trained, m.scalar)


def text_dpo(directory):
    """DPO over text answers: each packed sequence is a prompt and one answer with targets on the
    answer only; sequences come in groups (group_sizes), the true answer first. The policy's
    log-probability of a sequence is the sum of its targets' log-softmax; per group, with
    reference log-probs ref and u_k = beta((pi_k - ref_k) - (pi_0 - ref_0)):
      loss_type 0 (sigmoid DPO): mean over k >= 1 of -log sigmoid(-u_k)
      loss_type 1 (S-DPO):       -log sigmoid(-log sum_{k>=1} exp(u_k))
    averaged over the groups. Writes the per-sequence policy log-probs, the loss and the adapters'
    gradients."""
    m, (tokens, positions, targets, offsets), p, trained, head = read_case(directory)
    groups = load(directory, "group_sizes")
    reference = torch.from_numpy(load(directory, "reference").astype(np.float64))
    logits = m.hidden(p, tokens, positions, offsets) @ p[head].t()
    token_lp = -F.cross_entropy(logits, targets, ignore_index=-1, reduction="none")
    policy = torch.stack([token_lp[offsets[s]:offsets[s + 1]].sum() for s in range(len(offsets) - 1)])
    beta, sdpo = m.scalar("beta"), m.scalar("loss_type") == 1.0
    losses, first = [], 0
    for size in groups.astype(np.int64):
        pi, ref = policy[first:first + size], reference[first:first + size]
        u = beta * ((pi[1:] - ref[1:]) - (pi[0] - ref[0]))
        if sdpo:
            losses.append(-F.logsigmoid(-torch.logsumexp(u, dim=0)))
        else:
            losses.append((-F.logsigmoid(-u)).mean())
        first += size
    loss = torch.stack(losses).mean()
    loss.backward()
    save(directory, "policy", policy)
    save(directory, "loss", loss)
    for name in trained:
        save(directory, "grad." + name, p[name].grad)


if __name__ == "__main__":
    {"model": model, "text_dpo": text_dpo}[sys.argv[1]](sys.argv[2])
