"""The PyTorch + peft side of the TALLRec throughput comparison: LoRA SFT steps and Yes/No scoring.

Loads SmolLM2 from its GGUF file with `transformers` (which dequantizes every tensor to fp32),
uses `--threads` CPU threads and renders TALLRec prompts exactly as recforge does
(train/text/text_examples.cpp): the user message is the instruction, "\n", the input (no
demonstrations); the prompt is one ChatML user turn and the assistant header, no system turn,
"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n", tokenized without a BOS
(SmolLM2's GGUF sets tokenizer.ggml.add_bos_token false, so recforge adds none). The answers are
"Yes." and "No." tokenized alone.

`sft`: a peft LoRA adapter (r 8, alpha 16, dropout 0.05, q_proj, k_proj, v_proj and o_proj) on
the frozen model, AdamW (lr 1e-3, no weight decay) over the adapter parameters. Step i trains on
training examples [8i, 8i + 8) in file order; as in recforge's SFT batches
(train/text/text_batches.cpp) each sequence is the prompt's tokens then the true answer's, its
targets the answer's tokens and <|im_end|> (the prompt's last position predicts the answer's first
token, the last answer position predicts <|im_end|>), so the loss is the mean cross-entropy over
answer and end-of-turn targets only. Sequences are right-padded to the batch's longest with an
attention mask; pad positions have no target. One untimed warm-up step (on the first batch), then
`--steps` timed steps (forward, backward, optimizer step); a step's tokens/s is its real tokens
(prompt + answer per sequence: <|im_end|> is a target, never an input) / its time, padded tokens/s
its batch × longest / its time; both are medians over the timed steps.

`score`: for each of the first `--prompts` test examples, one forward over the prompt with
use_cache=True, then each answer scored from that cache as recforge's PromptScorer does
(model/llama/scoring.cpp): the cache is cropped back to the prompt (not copied, not recomputed),
the answer's tokens but the last are fed in one forward, and log p(answer | prompt) is the sum of
the log-softmax of its tokens. One untimed warm-up run on the first prompt; seconds per prompt
(prefill and both answers) as median and mean; prompt tokens/s = all prompt tokens / all time.
The report keeps every prompt's two log-probabilities and the first prompt's token ids.

`--only MODE` runs one workload; without it `score` runs first on the plain model, then `sft` adds
the adapter, in one process. Prints one JSON object with every field on stdout and human-readable
lines on stderr. On a loaded machine OpenMP's spinning threads make the short scoring forwards
far slower; OMP_WAIT_POLICY=PASSIVE (recorded in the report) avoids that.
"""
import argparse
import json
import os
import statistics
import time

# First: importing smollm2_pytorch sets TQDM_DISABLE before transformers loads.
from smollm2_pytorch import kv_cache_name, load_model, log

import peft
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoTokenizer

MODES = ("score", "sft")
ANSWERS = ("Yes.", "No.")
END_OF_TURN = "<|im_end|>"
BATCH = 8
LORA_RANK = 8
LORA_ALPHA = 16
LORA_DROPOUT = 0.05
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
LORA_LEARNING_RATE = 1e-3
IGNORE = -100
DATA_DIR = os.environ.get("RECFORGE_DATA_DIR", "../shared/data")


def load_tokenizer(gguf_path):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    return AutoTokenizer.from_pretrained(directory, gguf_file=name)


def read_examples(path, count):
    with open(path) as file:
        examples = json.load(file)[:count]
    if len(examples) < count:
        raise SystemExit(f"{path} has {len(examples)} examples, fewer than the {count} needed")
    return examples


def render_prompt(example):
    """recforge's preference prompt: a ChatML user turn (no demonstrations), assistant header."""
    message = example["instruction"] + "\n" + example["input"]
    return f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_ids(tokenizer):
    return {answer: encode(tokenizer, answer) for answer in ANSWERS}


def sft_sequence(prompt, answer, end):
    """recforge's add_answered_sequence: tokens prompt ++ answer, targets answer ++ end."""
    tokens = prompt + answer
    targets = [IGNORE] * (len(prompt) - 1) + answer + [end]
    return tokens, targets


def sft_batch(tokenizer, examples, answers, end):
    """The examples' sequences right-padded to the longest: ids, mask, targets, real tokens."""
    sequences = [sft_sequence(encode(tokenizer, render_prompt(e)), answers[e["output"]], end)
                 for e in examples]
    length = max(len(tokens) for tokens, _ in sequences)
    ids, mask, targets = [], [], []
    for tokens, target in sequences:
        pad = length - len(tokens)
        ids.append(tokens + [tokenizer.pad_token_id] * pad)
        mask.append([1] * len(tokens) + [0] * pad)
        targets.append(target + [IGNORE] * pad)
    real = sum(len(tokens) for tokens, _ in sequences)
    return dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                targets=torch.tensor(targets), real_tokens=real, padded_tokens=len(ids) * length)


def lora_model(model):
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=LORA_RANK, lora_alpha=LORA_ALPHA,
                             lora_dropout=LORA_DROPOUT, target_modules=LORA_TARGETS)
    return peft.get_peft_model(model, config).train()


def bench_sft(model, tokenizer, args):
    examples = read_examples(args.train, BATCH * args.steps)
    answers = answer_ids(tokenizer)
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    batches = [sft_batch(tokenizer, examples[i:i + BATCH], answers, end)
               for i in range(0, len(examples), BATCH)]
    torch.manual_seed(0)  # the adapter's initial A matrices and the dropout masks
    model = lora_model(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LORA_LEARNING_RATE, weight_decay=0.0)

    def train_step(batch):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       use_cache=False).logits
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(),
                               ignore_index=IGNORE)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, loss.item()

    train_step(batches[0])
    steps = [train_step(batch) for batch in batches]
    times = [seconds for seconds, _ in steps]
    real, padded = [b["real_tokens"] for b in batches], [b["padded_tokens"] for b in batches]
    return dict(peft_version=peft.__version__, batch=BATCH, steps=args.steps, rank=LORA_RANK,
                alpha=LORA_ALPHA, dropout=LORA_DROPOUT, target_modules=LORA_TARGETS,
                optimizer="AdamW", learning_rate=LORA_LEARNING_RATE,
                trainable_parameters=sum(p.numel() for p in trainable),
                real_tokens=real, padded_tokens=padded, all_seconds=times,
                seconds=statistics.median(times),
                tokens_per_s=statistics.median(n / s for n, s in zip(real, times)),
                padded_tokens_per_s=statistics.median(n / s for n, s in zip(padded, times)),
                losses=[loss for _, loss in steps])


def score_prompt(model, prompt, answers):
    """log p(answer | prompt) of each answer: one prefill, the cache cropped back after each."""
    cache_name = kv_cache_name(model)
    with torch.inference_mode():
        output = model(input_ids=torch.tensor([prompt]), use_cache=True)
        cache, after_prompt = output[cache_name], output.logits[0, -1].log_softmax(-1)
        scores = []
        for answer in answers:
            total = after_prompt[answer[0]].item()
            if len(answer) > 1:
                rows = model(input_ids=torch.tensor([answer[:-1]]), use_cache=True,
                             **{cache_name: cache}).logits[0].log_softmax(-1)
                total += rows.gather(1, torch.tensor(answer[1:])[:, None]).sum().item()
                cache.crop(1 - len(answer))  # back to the prompt alone
            scores.append(total)
        return scores


def bench_score(model, tokenizer, args):
    examples = read_examples(args.test, args.prompts)
    prompts = [encode(tokenizer, render_prompt(e)) for e in examples]
    answers = list(answer_ids(tokenizer).values())
    score_prompt(model, prompts[0], answers)
    times, scores = [], []
    for prompt in prompts:
        start = time.perf_counter()
        scores.append(score_prompt(model, prompt, answers))
        times.append(time.perf_counter() - start)
    prompt_tokens = [len(prompt) for prompt in prompts]
    return dict(prompts=args.prompts, answers=list(ANSWERS), answer_ids=answers,
                cache_reuse="crop", prompt_tokens=prompt_tokens, all_seconds=times,
                seconds=statistics.median(times), mean_seconds=statistics.mean(times),
                tokens_per_s=sum(prompt_tokens) / sum(times), log_probs=scores,
                first_prompt_ids=prompts[0])


def describe(mode, row):
    if mode == "sft":
        return (f"sft    {row['tokens_per_s']:10.1f} tokens/s  ({row['padded_tokens_per_s']:.1f} "
                f"padded; median step {row['seconds'] * 1e3:.0f} ms)")
    return (f"score  {row['tokens_per_s']:10.1f} prompt tokens/s  ({row['seconds'] * 1e3:.1f} ms "
            f"median, {row['mean_seconds'] * 1e3:.1f} ms mean per prompt)")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("RECFORGE_SMOLLM2_GGUF"),
                        help="SmolLM2 GGUF file (default: $RECFORGE_SMOLLM2_GGUF)")
    parser.add_argument("--train", default=os.path.join(DATA_DIR, "tallrec/movie_valid.json"))
    parser.add_argument("--test", default=os.path.join(DATA_DIR, "tallrec/movie_test.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="timed SFT steps")
    parser.add_argument("--prompts", type=int, default=50, help="scored test prompts")
    parser.add_argument("--only", choices=MODES, help="run one workload")
    args = parser.parse_args()
    if not args.model:
        parser.error("give --model or set RECFORGE_SMOLLM2_GGUF")
    if min(args.threads, args.steps, args.prompts) < 1:
        parser.error("counts must be positive")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    start = time.perf_counter()
    model = load_model(args.model, "sdpa")
    tokenizer = load_tokenizer(args.model)
    load_seconds = time.perf_counter() - start
    benches = dict(score=bench_score, sft=bench_sft)
    rows = {}
    for mode in [args.only] if args.only else MODES:
        rows[mode] = benches[mode](model, tokenizer, args)
        log(describe(mode, rows[mode]))
    report = dict(model=os.path.basename(args.model), train=args.train, test=args.test,
                  torch_version=torch.__version__, transformers_version=transformers.__version__,
                  threads=args.threads, dtype="float32",
                  attention=model.config._attn_implementation,
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"), load_seconds=load_seconds,
                  load_average_before=load_before, load_average_after=os.getloadavg(), rows=rows)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
