"""Loads a Hugging Face model directory written by recforge (and optionally a PEFT adapter) with
transformers and peft, and saves the logits of given token ids — the export tests' independent
reader. Run by RECFORGE_HF_PYTHON (a Python with torch 2.x, transformers and peft).


For checking what recforge exports: MODEL_DIR holds config.json, model.safetensors and
tokenizer.json; ADAPTER_DIR (optional) holds adapter_config.json and adapter_model.safetensors.
The model is loaded with transformers' AutoModelForCausalLM in fp32, the adapter with
peft.PeftModel.from_pretrained, the tokenizer with PreTrainedTokenizerFast(tokenizer_file=...).
Token ids come from --ids (a JSON list, or @FILE holding one) or from --text through the tokenizer.
One forward over the ids (batch 1, eval mode, no grad); the last position's logits are saved as a
float32 .npy of shape [vocab] (--all-positions: [T, vocab]). A JSON summary (ids, argmax, top-5,
what was loaded) goes to stdout.

Usage:
  python check_hf_export.py MODEL_DIR --ids '[1, 2, 3]' --out logits.npy [--adapter ADAPTER_DIR]
  python check_hf_export.py MODEL_DIR --text 'Hello' --out logits.npy
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast


def parse_ids(text):
    if text.startswith("@"):
        with open(text[1:]) as source:
            text = source.read()
    ids = json.loads(text)
    if not (isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)):
        raise argparse.ArgumentTypeError("--ids must be a non-empty JSON list of integers")
    return ids


def load_tokenizer(model_dir):
    path = os.path.join(model_dir, "tokenizer.json")
    return PreTrainedTokenizerFast(tokenizer_file=path) if os.path.exists(path) else None


def load_model(model_dir, adapter_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--adapter", help="PEFT adapter directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ids", type=parse_ids, help="JSON list of token ids, or @FILE")
    source.add_argument("--text", help="text to tokenize with MODEL_DIR/tokenizer.json")
    parser.add_argument("--add-special-tokens", action="store_true",
                        help="let the tokenizer add BOS/EOS to --text (default: no)")
    parser.add_argument("--out", required=True, help="where to save the logits (.npy)")
    parser.add_argument("--all-positions", action="store_true",
                        help="save logits of every position, [T, vocab]")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tokenizer = load_tokenizer(args.model_dir)
    if args.text is not None:
        if tokenizer is None:
            parser.error(f"--text needs {args.model_dir}/tokenizer.json")
        ids = tokenizer.encode(args.text, add_special_tokens=args.add_special_tokens)
    else:
        ids = args.ids
    model = load_model(args.model_dir, args.adapter)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
    saved = logits if args.all_positions else logits[-1]
    np.save(args.out, saved.numpy().astype(np.float32))
    top = torch.topk(logits[-1], 5)
    summary = dict(ids=ids, out=args.out, shape=list(saved.shape), adapter=args.adapter,
                   argmax=int(top.indices[0]), top5_ids=top.indices.tolist(),
                   top5_logits=top.values.tolist(), model_class=type(model).__name__)
    if tokenizer is not None:
        summary["text"] = tokenizer.decode(ids)
        summary["argmax_text"] = tokenizer.decode([summary["argmax"]])
    json.dump(summary, sys.stdout)
    print()


if __name__ == "__main__":
    main()
