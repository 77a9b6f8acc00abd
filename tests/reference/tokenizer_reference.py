"""Hugging Face `tokenizers` reference for recforge's byte-level BPE tokenizer (model/text).

Usage: tokenizer_reference.py MODEL.gguf DIR

Reads the vocabulary, merges and token types of a GGUF file (tokenizer.ggml.*) with the `gguf`
package and builds the tokenizer SmolLM2's own tokenizer.json describes: BPE(vocab, merges),
pre-tokenizer Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)], ByteLevel decoder, control tokens (type 3) added as special tokens and
user-defined ones (type 4) as plain added tokens. Writes into DIR:
  tokenizer.json      that tokenizer (Tokenizer.save)
  gguf_tokenizer.json the GGUF arrays as they are: tokens, token_types, merges, pre, bos, eos,
                      unk, pad, add_bos (what recforge fills a TokenizerSpec from)
  ref_ids.jsonl       for each line of DIR/texts.jsonl (one JSON string per line) the ids, as a
                      JSON array per line
Texts may hold bytes that are not UTF-8: the test writes such a byte b as the lone surrogate
U+DC00+b (Python's "surrogateescape"). `tokenizers` takes valid text only, so the reference
applies recforge's documented rule: each such byte is a piece of its own, encoded as the token
that spells the byte (left out when the vocabulary has none, as `tokenizers` leaves out a
character without a token), and the valid stretches between them are encoded by `tokenizers`.
"""
import json
import sys
from pathlib import Path

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL, USER_DEFINED = 3, 4


def bytes_to_unicode():
    """GPT-2's byte → character table."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {}
    shifted = 0
    for b in range(256):
        if b in kept:
            chars[b] = chr(b)
        else:
            chars[b] = chr(0x100 + shifted)
            shifted += 1
    return chars


def gguf_tokenizer(path):
    fields = GGUFReader(path).fields

    def value(name, default=None):
        return fields[name].contents() if name in fields else default

    return {
        "tokens": value("tokenizer.ggml.tokens"),
        "token_types": value("tokenizer.ggml.token_type", []),
        "merges": value("tokenizer.ggml.merges"),
        "pre": value("tokenizer.ggml.pre", "default"),
        "bos": value("tokenizer.ggml.bos_token_id", -1),
        "eos": value("tokenizer.ggml.eos_token_id", -1),
        "unk": value("tokenizer.ggml.unknown_token_id", -1),
        "pad": value("tokenizer.ggml.padding_token_id", -1),
        "add_bos": bool(value("tokenizer.ggml.add_bos_token", False)),
    }


def hf_tokenizer(spec):
    vocab = {text: i for i, text in enumerate(spec["tokens"])}
    merges = [tuple(m.split(" ")) for m in spec["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    types = spec["token_types"] or [1] * len(spec["tokens"])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, k in zip(spec["tokens"], types) if k == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, k in zip(spec["tokens"], types) if k == USER_DEFINED])
    return tok


def split_escaped(text):
    """Stretches of valid text and single escaped bytes (ints), in order."""
    parts, start = [], 0
    for i, c in enumerate(text):
        if 0xDC80 <= ord(c) <= 0xDCFF:
            if i > start:
                parts.append(text[start:i])
            parts.append(ord(c) - 0xDC00)
            start = i + 1
    if start < len(text):
        parts.append(text[start:])
    return parts


def encode_all(tok, texts, byte_ids):
    valid = [t for t in texts if not any(isinstance(p, int) for p in split_escaped(t))]
    encoded = dict(zip(valid, (e.ids for e in tok.encode_batch(valid, add_special_tokens=False))))
    out = []
    for text in texts:
        if text in encoded:
            out.append(encoded[text])
            continue
        ids = []
        for part in split_escaped(text):
            if isinstance(part, int):
                if byte_ids[part] is not None:  # a byte without a token is left out
                    ids.append(byte_ids[part])
            else:
                ids.extend(tok.encode(part, add_special_tokens=False).ids)
        out.append(ids)
    return out


def main():
    model, out_dir = sys.argv[1], Path(sys.argv[2])
    spec = gguf_tokenizer(model)
    tok = hf_tokenizer(spec)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "gguf_tokenizer.json").write_text(json.dumps(spec))
    chars = bytes_to_unicode()
    byte_ids = [tok.token_to_id(chars[b]) for b in range(256)]
    lines = (out_dir / "texts.jsonl").read_bytes().decode("utf-8").split("\n")
    texts = [json.loads(line) for line in lines if line]  # not splitlines(): U+2028 is a text
    with open(out_dir / "ref_ids.jsonl", "w") as f:
        for ids in encode_all(tok, texts, byte_ids):
            f.write(json.dumps(ids) + "\n")


if __name__ == "__main__":
    main()
