"""PyTorch references for recforge's kernels.

Usage: kernels.py OP DIR. Reads the inputs a C++ test wrote to DIR as .npy files, computes OP in
float64 with PyTorch (autograd for the backward passes) and writes each output as DIR/ref_<name>.npy.
A test that checks several configurations in one run writes num_cases and prefixes each case's
files with c0_, c1_, ... (see Case.cases).
Only uses what both PyTorch 1.13 (Debian) and 2.x provide.
"""
import math
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

IGNORE_INDEX = -1
LAYERNORM_EPS = float(np.float32(1e-5))  # kLayerNormEps is a float constant


class Case:
    def __init__(self, directory, prefix=""):
        self.dir = pathlib.Path(directory)
        self.prefix = prefix

    def load(self, name):
        return np.load(self.dir / f"{self.prefix}{name}.npy")

    def tensor(self, name, requires_grad=False):
        t = torch.from_numpy(self.load(name).astype(np.float64))
        return t.requires_grad_(requires_grad)

    def ints(self, name):
        return torch.from_numpy(self.load(name).astype(np.int64))

    def uint32(self, name):
        """An int32 array reinterpreted bit for bit as uint32."""
        return self.load(name).view(np.uint32)

    def scalar(self, name):
        return float(self.load(name))

    def write(self, name, value):
        if isinstance(value, torch.Tensor):
            value = value.detach().numpy()
        np.save(self.dir / f"ref_{self.prefix}{name}.npy", np.asarray(value, dtype=np.float64))

    def cases(self):
        """The sub-cases c0_, c1_, ... of a test that wrote num_cases."""
        count = int(self.scalar("num_cases"))
        return [Case(self.dir, f"{self.prefix}c{i}_") for i in range(count)]


def gelu(case):
    x = case.tensor("inp", requires_grad=True)
    out = torch.nn.functional.gelu(x, approximate="tanh")
    out.backward(case.tensor("dout"))
    case.write("out", out)
    case.write("dinp", x.grad)


def embedding(case):
    """out = wte[tokens] + wpe[positions]; dwte, dwpe = initial values + autograd of out·dout."""
    wte = case.tensor("wte", requires_grad=True)
    wpe = case.tensor("wpe", requires_grad=True)
    out = F.embedding(case.ints("tokens"), wte) + F.embedding(case.ints("positions"), wpe)
    out.backward(case.tensor("dout"))
    case.write("out", out)
    case.write("dwte", case.tensor("dwte0") + wte.grad)
    case.write("dwpe", case.tensor("dwpe0") + wpe.grad)


def layernorm(case):
    """Per case: layernorm forward (out, mean, rstd), the fused residual variant, and the backward
    accumulated into the initial dinp0/dweight0/dbias0."""
    for sub in case.cases():
        x = sub.tensor("inp", requires_grad=True)
        weight = sub.tensor("weight", requires_grad=True)
        bias = sub.tensor("bias", requires_grad=True)
        C = x.shape[-1]
        out = F.layer_norm(x, (C,), weight, bias, eps=LAYERNORM_EPS)
        out.backward(sub.tensor("dout"))
        mean = x.detach().mean(dim=-1, keepdim=True)
        var = ((x.detach() - mean) ** 2).mean(dim=-1)  # biased
        sub.write("out", out)
        sub.write("mean", mean.squeeze(-1))
        sub.write("rstd", 1.0 / torch.sqrt(var + LAYERNORM_EPS))
        sub.write("dinp", sub.tensor("dinp0") + x.grad)
        sub.write("dweight", sub.tensor("dweight0") + weight.grad)
        sub.write("dbias", sub.tensor("dbias0") + bias.grad)
        residual = sub.tensor("a") + sub.tensor("b")
        sub.write("residual", residual)
        sub.write("residual_out", F.layer_norm(residual, (C,), weight, bias, eps=LAYERNORM_EPS))


def matmul(case):
    """out = inp·weightᵀ (+ bias); dinp overwritten, dweight and dbias added to their initial
    values, all by autograd of out·dout."""
    inp = case.tensor("inp", requires_grad=True)
    weight = case.tensor("weight", requires_grad=True)
    bias = case.tensor("bias", requires_grad=True)
    out = F.linear(inp, weight, bias)
    out.backward(case.tensor("dout"))
    case.write("out", out)
    case.write("out_nobias", F.linear(inp, weight))
    case.write("dinp", inp.grad)
    case.write("dweight", case.tensor("dweight0") + weight.grad)
    case.write("dbias", case.tensor("dbias0") + bias.grad)


def attention(case):
    """Packed multi-head attention with grouped-query attention, one sequence at a time (offsets
    shared by every case): qkv [N, NH + 2·KV, HS] (or [N, 3, NH, HS] when KV = NH), query head h
    reads key/value head h // (NH / KV), repeated over the group with repeat_interleave;
    out = softmax(mask(q·kᵀ/√HS))·v, lse = logsumexp of the masked scaled scores, dqkv = autograd
    of out·dout."""
    offsets = case.ints("offsets").tolist()
    for sub in case.cases():
        NH, KV, HS = int(sub.scalar("NH")), int(sub.scalar("KV")), int(sub.scalar("HS"))
        causal = sub.scalar("causal") != 0
        qkv = sub.tensor("qkv", requires_grad=True)
        heads = qkv.reshape(qkv.shape[0], NH + 2 * KV, HS).transpose(0, 1)  # [NH + 2KV, N, HS]
        group = NH // KV
        q_heads = heads[:NH]
        k_heads = heads[NH:NH + KV].repeat_interleave(group, dim=0)  # [NH, N, HS]
        v_heads = heads[NH + KV:].repeat_interleave(group, dim=0)
        outs, lses = [], []
        for begin, end in zip(offsets[:-1], offsets[1:]):
            T = end - begin
            if T == 0:
                continue
            q, k, v = (x[:, begin:end] for x in (q_heads, k_heads, v_heads))  # each [NH, T, HS]
            scores = q @ k.transpose(1, 2) / math.sqrt(HS)
            if causal:
                above = torch.ones(T, T, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(above, -math.inf)
            lses.append(torch.logsumexp(scores, dim=-1).T)  # [T, NH]
            outs.append((torch.softmax(scores, dim=-1) @ v).transpose(0, 1))  # [T, NH, HS]
        out = torch.cat(outs)
        out.backward(sub.tensor("dout"))
        sub.write("out", out)
        sub.write("lse", torch.cat(lses))
        sub.write("dqkv", qkv.grad)


def rmsnorm(case):
    """Per case: Llama's RMSNorm out = x·rstd·weight, rstd = 1/√(mean(x²) + eps), the fused
    residual variant (residual = a + b, then its norm), and the backward accumulated into the
    initial dinp0/dweight0."""
    for sub in case.cases():
        eps = sub.scalar("eps")
        x = sub.tensor("inp", requires_grad=True)
        weight = sub.tensor("weight", requires_grad=True)
        rstd = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
        out = x * rstd * weight
        out.backward(sub.tensor("dout"))
        sub.write("out", out)
        sub.write("rstd", rstd.squeeze(-1))
        sub.write("dinp", sub.tensor("dinp0") + x.grad)
        sub.write("dweight", sub.tensor("dweight0") + weight.grad)
        residual = sub.tensor("a") + sub.tensor("b")
        residual_rstd = torch.rsqrt(residual.pow(2).mean(dim=-1, keepdim=True) + eps)
        sub.write("residual", residual)
        sub.write("residual_out", residual * residual_rstd * weight.detach())


def rope_cos_sin(positions, R, base):
    """cos and sin [N, R] of transformers' LlamaRotaryEmbedding: the fp32 inverse frequencies and
    fp32 angles exactly as it forms them, emb = cat(freqs, freqs), cos and sin taken in float64 of
    the fp32 angles. Also returns inv_freq."""
    inv_freq = 1.0 / (base ** (torch.arange(0, R, 2, dtype=torch.int64).float() / R))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1).double()
    return emb.cos(), emb.sin(), inv_freq


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(case):
    """Per case: rotary embeddings of x [N, H, HS] at positions [N] over the first R channels
    (q·cos + rotate_half(q)·sin, the rest passed through); dx = autograd of out·dout."""
    for sub in case.cases():
        R, base = int(sub.scalar("R")), sub.scalar("base")
        x = sub.tensor("x", requires_grad=True)
        cos, sin, inv_freq = rope_cos_sin(sub.ints("positions"), R, base)
        cos, sin = cos[:, None, :], sin[:, None, :]
        rotated, passed = x[..., :R], x[..., R:]
        out = torch.cat((rotated * cos + rotate_half(rotated) * sin, passed), dim=-1)
        out.backward(sub.tensor("dout"))
        sub.write("out", out)
        sub.write("dx", x.grad)
        sub.write("inv_freq", inv_freq)


def swiglu(case):
    """out = silu(gate)·up; dgate and dup by autograd of out·dout."""
    gate = case.tensor("gate", requires_grad=True)
    up = case.tensor("up", requires_grad=True)
    out = F.silu(gate) * up
    out.backward(case.tensor("dout"))
    case.write("out", out)
    case.write("dgate", gate.grad)
    case.write("dup", up.grad)


def columns(case):
    """concat = torch.cat of the parts part0.. along the columns; split<k> = the k-th block of
    packed by torch.split with the parts' widths."""
    parts = [case.tensor(f"part{k}") for k in range(int(case.scalar("count")))]
    case.write("concat", torch.cat(parts, dim=1))
    widths = [part.shape[1] for part in parts]
    for k, block in enumerate(torch.split(case.tensor("packed"), widths, dim=1)):
        case.write(f"split{k}", block)


def cached_attention(case):
    """out = causal softmax(q·kᵀ/√HS)·v of n new tokens at positions start.. over the cache:
    query i sees keys 0 .. start + i; kv heads repeated over their query-head group."""
    for sub in case.cases():
        q, k, v = sub.tensor("q"), sub.tensor("k_cache"), sub.tensor("v_cache")  # [n|S, heads, HS]
        start, n = int(sub.scalar("start")), q.shape[0]
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(q.shape[2])
        above = torch.arange(k.shape[0])[None, :] > (start + torch.arange(n))[:, None]
        scores = scores.masked_fill(above[None], -math.inf)
        sub.write("out", torch.einsum("hij,jhd->ihd", torch.softmax(scores, dim=-1), v))


def add(case):
    """y0 + x, rounded once to fp32 (sum32) and in float64 (sum64)."""
    y0, x = case.tensor("y0"), case.tensor("x")
    case.write("sum32", (y0.float() + x.float()).double())
    case.write("sum64", y0 + x)


def cross_entropy(case):
    """losses = F.cross_entropy(reduction='none') (0 on ignored rows); dlogits = autograd of
    loss_scale·Σ losses."""
    logits = case.tensor("logits", requires_grad=True)
    losses = F.cross_entropy(logits, case.ints("targets"), reduction="none",
                             ignore_index=IGNORE_INDEX)
    (case.scalar("loss_scale") * losses.sum()).backward()
    case.write("losses", losses)
    case.write("dlogits", logits.grad)


def classifier(case):
    """Per case: logits = hidden·wte[offset : offset + V]ᵀ; targets [N, K] with slot weights
    weights [K]; losses[n] = Σ_k w_k · cross-entropy(logits[n], targets[n, k]) (0 where ignored);
    dhidden = autograd of loss_scale·Σ losses, dwte = dwte0 + its autograd (the whole table)."""
    for sub in case.cases():
        hidden = sub.tensor("hidden", requires_grad=True)
        wte = sub.tensor("wte", requires_grad=True)
        offset, V = int(sub.scalar("offset")), int(sub.scalar("V"))
        logits = hidden @ wte[offset:offset + V].T
        targets, weights = sub.ints("targets"), sub.tensor("weights")
        losses = sum(w * F.cross_entropy(logits, targets[:, k], reduction="none",
                                         ignore_index=IGNORE_INDEX)
                     for k, w in enumerate(weights))
        (sub.scalar("loss_scale") * losses.sum()).backward()
        sub.write("losses", losses)
        sub.write("dhidden", hidden.grad)
        sub.write("dwte", sub.tensor("dwte0") + wte.grad)


def sampled_softmax(case):
    """Per case: each row scores its positive against the shared negatives (a negative equal to
    the row's positive removed), logits = hidden·wte[offset : offset + V][candidate]ᵀ / τ − logQ;
    losses = logsumexp − positive logit (0 on ignored rows); dhidden = autograd of
    loss_scale·Σ losses, dwte = dwte0 + its autograd (the whole table)."""
    for sub in case.cases():
        hidden = sub.tensor("hidden", requires_grad=True)
        wte = sub.tensor("wte", requires_grad=True)
        offset, V = int(sub.scalar("offset")), int(sub.scalar("V"))
        items = wte[offset:offset + V]
        positives, negatives = sub.ints("positives"), sub.ints("negatives")
        tau = sub.scalar("temperature")
        counted = positives != IGNORE_INDEX
        pos = positives.clamp(min=0)
        s_pos = (hidden * items[pos]).sum(dim=1) / tau - sub.tensor("log_q_positive")
        s_neg = hidden @ items[negatives].T / tau - sub.tensor("log_q_negative")
        s_neg = s_neg.masked_fill(negatives[None, :] == positives[:, None], -math.inf)
        losses = torch.logsumexp(torch.cat([s_pos[:, None], s_neg], dim=1), dim=1) - s_pos
        losses = torch.where(counted, losses, torch.zeros_like(losses))
        (sub.scalar("loss_scale") * losses.sum()).backward()
        sub.write("losses", losses)
        sub.write("dhidden", hidden.grad)
        sub.write("dwte", sub.tensor("dwte0") + wte.grad)


def philox4x32_10(counter, key):
    """Philox4x32-10 (Random123) over arrays: counter is 4 uint32 arrays, key 2 uint32 scalars."""
    low = np.uint64(0xFFFFFFFF)
    c = [np.asarray(word, dtype=np.uint64) for word in counter]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & low, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & low]
        k0 = (k0 + np.uint64(0x9E3779B9)) & low
        k1 = (k1 + np.uint64(0xBB67AE85)) & low
    return [word.astype(np.uint32) for word in c]


def philox_uniform(seed, stream, n):
    """The uniform numbers of elements 0..n-1: word i&3 of Philox(counter {i>>2, stream}, seed),
    top 24 bits scaled by 2^-24."""
    index = np.arange(n, dtype=np.uint64)
    block = index >> np.uint64(2)
    low = np.uint64(0xFFFFFFFF)
    counter = [block & low, block >> np.uint64(32),
               np.full(n, stream & 0xFFFFFFFF, dtype=np.uint64),
               np.full(n, stream >> 32, dtype=np.uint64)]
    words = np.stack(philox4x32_10(counter, (seed & 0xFFFFFFFF, seed >> 32)))  # [4, n]
    word = words[(index & np.uint64(3)).astype(np.int64), np.arange(n)]
    return (word >> np.uint32(8)).astype(np.float64) * 2.0**-24


def dropout(case):
    """Inverted dropout with the Philox mask: keep iff uniform >= p, scale 1/(1-p); the backward
    applies the same mask to dout. seed and stream arrive as [lo32, hi32] words."""
    seed_words, stream_words = case.uint32("seed"), case.uint32("stream")
    seed = int(seed_words[0]) | int(seed_words[1]) << 32
    stream = int(stream_words[0]) | int(stream_words[1]) << 32
    p = case.scalar("p")
    inp = case.tensor("inp").numpy()
    keep = philox_uniform(seed, stream, inp.size) >= p
    case.write("out", inp * keep / (1.0 - p))
    case.write("dinp", case.tensor("dout").numpy() * keep / (1.0 - p))
    case.write("keep", keep)


def adamw(case):
    """Per case: torch.optim.AdamW over steps, elements [0, num_decayed) in a group with weight
    decay and the rest in one without; grads (one row per step) are multiplied by grad_scale."""
    for sub in case.cases():
        params = sub.tensor("params")
        grads = sub.tensor("grads")  # [steps, n]
        nd = int(sub.scalar("num_decayed"))
        decayed = params[:nd].clone().requires_grad_(True)
        plain = params[nd:].clone().requires_grad_(True)
        groups = [{"params": [decayed], "weight_decay": sub.scalar("weight_decay")},
                  {"params": [plain], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=sub.scalar("lr"),
                                betas=(sub.scalar("beta1"), sub.scalar("beta2")),
                                eps=sub.scalar("eps"))
        for grad in grads * sub.scalar("grad_scale"):
            decayed.grad, plain.grad = grad[:nd].clone(), grad[nd:].clone()
            opt.step()
        state = [opt.state[decayed], opt.state[plain]]
        sub.write("params", torch.cat([decayed, plain]))
        sub.write("m", torch.cat([s["exp_avg"] for s in state]))
        sub.write("v", torch.cat([s["exp_avg_sq"] for s in state]))


def rows(case):
    """Gather: out[i] = inp[rows[i]]; scatter: zeros with out[rows[i]] = src[i]."""
    inp, src, rows = case.tensor("inp"), case.tensor("src"), case.ints("rows")
    case.write("gathered", torch.index_select(inp, 0, rows))
    case.write("scattered", torch.zeros_like(inp).index_copy(0, rows, src))


def global_norm(case):
    """norm = ‖grads‖₂ (torch.linalg.norm); clipped = the grads after clip_grad_norm_ to
    max_norm."""
    grads = case.tensor("grads")
    case.write("norm", torch.linalg.norm(grads))
    param = torch.zeros_like(grads, requires_grad=True)
    param.grad = grads.clone()
    torch.nn.utils.clip_grad_norm_([param], case.scalar("max_norm"))
    case.write("clipped", param.grad)


OPS = {name: fn for name, fn in globals().items() if callable(fn) and fn.__module__ == __name__
       and name not in ("Case", "philox4x32_10", "philox_uniform", "rope_cos_sin", "rotate_half")}

if __name__ == "__main__":
    op, directory = sys.argv[1], sys.argv[2]
    OPS[op](Case(directory))
