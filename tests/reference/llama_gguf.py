"""Independent numpy reference of a Llama-family language model read from a GGUF file.

Usage (run with a Python that has the `gguf` PyPI package and numpy):
  llama_gguf.py logits --gguf F --ids IDS.json --out OUT.npy
      IDS.json is a JSON list of prompts, each a list of token ids; OUT.npy is float64 [P, V], the
      next-token logits after each prompt's last token.
  llama_gguf.py greedy --gguf F --ids IDS.json --new-tokens N --out OUT.json [--eos ID]
      greedy continuation (argmax, ties to the lowest id) of each prompt for N new tokens with a KV
      cache, stopping after the eos token if given (it is included); a JSON list of lists.
  llama_gguf.py tokens --gguf F
      prints the vocabulary size, the bos/eos ids and the first few tokens (a debugging aid).

Shares nothing with recforge's C++: tensors are read with gguf.GGUFReader, dequantized with
gguf.quants.dequantize and computed in float64. It follows llama.cpp's conventions: the Q and K
weights of a llama GGUF are stored permuted for the "normal" rotary embedding, which rotates
adjacent pairs (x0, x1), (x2, x3), ... of each head, so that rotation is applied directly to the
stored weights' outputs. Each prompt is processed as one sequence.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


@dataclass
class Config:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    rope_base: float
    rope_dims: int
    rms_eps: float
    n_ctx: int


def field_value(reader, key, default=None):
    field = reader.get_field(key)
    if field is None:
        if default is None:
            raise KeyError(f"GGUF metadata lacks {key}")
        return default
    return field.contents()


def read_config(reader):
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"general.architecture is {arch!r}, expected 'llama'")
    scaling = field_value(reader, "llama.rope.scaling.type", "none")
    if scaling != "none":
        raise ValueError(f"llama.rope.scaling.type {scaling!r} is not supported")
    n_embd = int(field_value(reader, "llama.embedding_length"))
    n_head = int(field_value(reader, "llama.attention.head_count"))
    head_dim = int(field_value(reader, "llama.attention.key_length", n_embd // n_head))
    return Config(
        n_layer=int(field_value(reader, "llama.block_count")),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=int(field_value(reader, "llama.attention.head_count_kv", n_head)),
        head_dim=head_dim,
        n_ff=int(field_value(reader, "llama.feed_forward_length")),
        rope_base=float(field_value(reader, "llama.rope.freq_base", 10000.0)),
        rope_dims=int(field_value(reader, "llama.rope.dimension_count", head_dim)),
        rms_eps=float(field_value(reader, "llama.attention.layer_norm_rms_epsilon")),
        n_ctx=int(field_value(reader, "llama.context_length")),
    )


class Weights:
    """The GGUF's tensors as float64 row-major arrays, dequantized once each on first use."""

    def __init__(self, reader):
        self.tensors = {t.name: t for t in reader.tensors}
        self.cache = {}

    def __contains__(self, name):
        return name in self.tensors

    def __getitem__(self, name):
        if name not in self.cache:
            self.cache[name] = self.load(name)
        return self.cache[name]

    def load(self, name):
        tensor = self.tensors[name]
        # GGUF lists dims fastest-varying first; the row-major numpy shape is their reverse.
        shape = tuple(reversed([int(d) for d in tensor.shape]))
        values = dequantize(tensor.data, tensor.tensor_type)
        if values.size != math.prod(shape):
            raise ValueError(f"{name}: {values.size} values for shape {shape}")
        return np.ascontiguousarray(values.reshape(shape), dtype=np.float64)


class Llama:
    def __init__(self, path):
        reader = GGUFReader(path)
        self.config = read_config(reader)
        self.weights = Weights(reader)
        self.check_shapes()
        half = self.config.rope_dims // 2
        self.inv_freq = self.config.rope_base ** (-2.0 * np.arange(half) / self.config.rope_dims)

    def check_shapes(self):
        c = self.config
        q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        expected = {"attn_q": (q_dim, c.n_embd), "attn_k": (kv_dim, c.n_embd),
                    "attn_v": (kv_dim, c.n_embd), "attn_output": (c.n_embd, q_dim),
                    "ffn_gate": (c.n_ff, c.n_embd), "ffn_up": (c.n_ff, c.n_embd),
                    "ffn_down": (c.n_embd, c.n_ff), "attn_norm": (c.n_embd,),
                    "ffn_norm": (c.n_embd,)}
        for layer in range(c.n_layer):
            for part, shape in expected.items():
                tensor = self.weights.tensors[f"blk.{layer}.{part}.weight"]
                stored = tuple(reversed([int(d) for d in tensor.shape]))
                if stored != shape:
                    raise ValueError(f"blk.{layer}.{part}.weight has shape {stored}, not {shape}")
        if c.n_head % c.n_head_kv != 0 or c.rope_dims % 2 or c.rope_dims > c.head_dim:
            raise ValueError(f"inconsistent attention configuration {c}")

    def output_weight(self):
        name = "output.weight" if "output.weight" in self.weights else "token_embd.weight"
        return self.weights[name]

    def rms_norm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.config.rms_eps) * weight

    def rope(self, x, positions):
        """Rotates adjacent pairs of the first rope_dims features of each head; x is [T, H, HS]."""
        angles = positions[:, None].astype(np.float64) * self.inv_freq[None, :]  # [T, R/2]
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        out = x.copy()
        even = x[..., 0:self.config.rope_dims:2]
        odd = x[..., 1:self.config.rope_dims:2]
        out[..., 0:self.config.rope_dims:2] = even * cos - odd * sin
        out[..., 1:self.config.rope_dims:2] = even * sin + odd * cos
        return out

    def attention(self, q, k, v, start):
        """Causal GQA attention of the new queries q [T, H, HS] over the cached k, v [S, KV, HS],
        where query t sits at position start + t."""
        c = self.config
        t_new, s_all = q.shape[0], k.shape[0]
        group = c.n_head // c.n_head_kv
        kv_of_head = np.arange(c.n_head) // group
        k_heads = k[:, kv_of_head].transpose(1, 2, 0)  # [H, HS, S]
        v_heads = v[:, kv_of_head].transpose(1, 0, 2)  # [H, S, HS]
        scores = (q.transpose(1, 0, 2) @ k_heads) / math.sqrt(c.head_dim)  # [H, T, S]
        future = np.arange(s_all)[None, :] > (start + np.arange(t_new))[:, None]
        scores = np.where(future[None], -np.inf, scores)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        return (probs @ v_heads).transpose(1, 0, 2).reshape(t_new, c.n_head * c.head_dim)

    def forward(self, ids, cache):
        """Hidden states [T, C] after the final norm for the new tokens `ids`, which follow the
        tokens already in `cache` (a list of per-layer [k, v] arrays, extended in place)."""
        c, w = self.config, self.weights
        start = cache[0][0].shape[0] if cache else 0
        if start + len(ids) > c.n_ctx:
            raise ValueError(f"{start + len(ids)} tokens exceed the context length {c.n_ctx}")
        positions = np.arange(start, start + len(ids))
        x = w["token_embd.weight"][np.asarray(ids, dtype=np.int64)]
        for layer in range(c.n_layer):
            p = f"blk.{layer}."
            h = self.rms_norm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(len(ids), c.n_head, c.head_dim)
            k = (h @ w[p + "attn_k.weight"].T).reshape(len(ids), c.n_head_kv, c.head_dim)
            v = (h @ w[p + "attn_v.weight"].T).reshape(len(ids), c.n_head_kv, c.head_dim)
            q, k = self.rope(q, positions), self.rope(k, positions)
            if len(cache) <= layer:
                cache.append([k[:0], v[:0]])
            cache[layer][0] = np.concatenate([cache[layer][0], k])
            cache[layer][1] = np.concatenate([cache[layer][1], v])
            att = self.attention(q, cache[layer][0], cache[layer][1], start)
            x = x + att @ w[p + "attn_output.weight"].T
            h = self.rms_norm(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
        return self.rms_norm(x, w["output_norm.weight"])

    def next_logits(self, hidden_last):
        return self.output_weight() @ hidden_last

    def prompt_logits(self, ids):
        if not ids:
            raise ValueError("empty prompt")
        return self.next_logits(self.forward(ids, [])[-1])

    def greedy(self, ids, new_tokens, eos=None):
        if not ids:
            raise ValueError("empty prompt")
        cache, generated, feed = [], [], list(ids)
        for _ in range(new_tokens):
            token = int(np.argmax(self.next_logits(self.forward(feed, cache)[-1])))
            generated.append(token)
            if token == eos:
                break
            feed = [token]
        return generated


def read_prompts(path):
    with open(path) as f:
        prompts = json.load(f)
    if not isinstance(prompts, list) or not all(isinstance(p, list) for p in prompts):
        raise ValueError(f"{path}: expected a JSON list of lists of token ids")
    return [[int(t) for t in p] for p in prompts]


def command_logits(args):
    model = Llama(args.gguf)
    logits = np.stack([model.prompt_logits(ids) for ids in read_prompts(args.ids)])
    np.save(args.out, logits.astype(np.float64))


def command_greedy(args):
    model = Llama(args.gguf)
    outputs = [model.greedy(ids, args.new_tokens, args.eos) for ids in read_prompts(args.ids)]
    with open(args.out, "w") as f:
        json.dump(outputs, f)


def command_tokens(args):
    reader = GGUFReader(args.gguf)
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    print(f"vocab size: {len(tokens)}")
    for key in ("bos", "eos", "unknown", "padding"):
        print(f"{key} id: {field_value(reader, f'tokenizer.ggml.{key}_token_id', 'absent')}")
    for index, token in enumerate(tokens[:16]):
        print(f"{index}: {token!r}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    logits = commands.add_parser("logits")
    greedy = commands.add_parser("greedy")
    tokens = commands.add_parser("tokens")
    for sub in (logits, greedy, tokens):
        sub.add_argument("--gguf", required=True)
    for sub in (logits, greedy):
        sub.add_argument("--ids", required=True)
        sub.add_argument("--out", required=True)
    greedy.add_argument("--new-tokens", type=int, required=True)
    greedy.add_argument("--eos", type=int)
    logits.set_defaults(run=command_logits)
    greedy.set_defaults(run=command_greedy)
    tokens.set_defaults(run=command_tokens)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
