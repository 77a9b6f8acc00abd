"""The PyTorch side of `recforge bench`'s SmolLM2 row: prefill, greedy decode and LoRA fine-tuning.

Loads SmolLM2 from its GGUF file with `transformers` (which dequantizes every tensor to fp32), uses
`--threads` CPU threads and times three workloads, each after one untimed warm-up run. `prefill`:
one forward over a P-token prompt with use_cache=True; tokens/s = P / median time. `decode`: greedy
generation written by hand: an untimed prefill, then K steps that each feed the last token with the
KV cache and take the argmax; tokens/s = K / median time of the K steps. `generated_ids` are the
first K greedy tokens, the ids that model.generate(max_new_tokens=K, do_sample=False) makes.
`lora`: a peft LoRA adapter (r 8, alpha 16, q_proj and v_proj, no dropout) on the frozen model; one
step is the causal LM loss (labels = input_ids) on B sequences of L tokens, backward, and AdamW
(lr 1e-4, no weight decay) over the adapter parameters; tokens/s = B·L / median step time. Prompt
and batch ids are `--prompt-ids` or random valid ids from `--seed`. `--attention eager` replaces
transformers' default SDPA attention with its plain-matmul one. Memory is the process's resident
set: after loading, and its peak during the workload alone (the kernel's peak counter is reset
after loading where /proc/self/clear_refs allows it; otherwise the peak includes loading, and
`peak_reset` says so). `--only MODE` runs one workload in this process; without it each workload
runs in a fresh child process, so that each peak is that workload's own. Prints one JSON object
with every field on stdout and human-readable lines on stderr. On a loaded machine OpenMP's spinning
threads make the one-token steps far slower; OMP_WAIT_POLICY=PASSIVE (recorded in the report)
avoids that.
"""
import argparse
import ctypes
import gc
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # no GGUF-conversion progress bars on stderr

import torch
import transformers
from transformers import AutoModelForCausalLM

MODES = ("prefill", "decode", "lora")
LORA_RANK = 8
LORA_ALPHA = 16
LORA_TARGETS = ["q_proj", "v_proj"]
LORA_LEARNING_RATE = 1e-4


def log(message):
    print(message, file=sys.stderr, flush=True)


def resident_mb(field):
    """VmRSS (now) or VmHWM (peak) of this process, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_free_memory():
    """Collects garbage and hands freed malloc arenas back, so RSS shows what is still in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss():
    """Resets the kernel's peak-RSS counter (VmHWM, ru_maxrss); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return resident_mb("VmHWM") <= resident_mb("VmRSS") + 1


def load_model(gguf_path, attention):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation=attention)
    return model.eval()


def token_ids(args, vocab, count, rows=1, seed_offset=0):
    """`--prompt-ids` repeated or cut to `count`, or random ids in [0, vocab) from `--seed`."""
    if args.prompt_ids is not None:
        ids = (args.prompt_ids * (count // len(args.prompt_ids) + 1))[:count]
        return torch.tensor([ids] * rows, dtype=torch.long)
    generator = torch.Generator().manual_seed(args.seed + seed_offset)
    return torch.randint(0, vocab, (rows, count), generator=generator)


def median_seconds(operation, repeats):
    """Median wall time of `operation()` over `repeats` runs after one untimed warm-up run."""
    operation()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        operation()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def bench_prefill(model, args):
    prompt = token_ids(args, model.config.vocab_size, args.prompt_tokens)

    def prefill():
        with torch.inference_mode():
            model(input_ids=prompt, use_cache=True)

    seconds, times = median_seconds(prefill, args.repeats)
    return dict(prompt_tokens=args.prompt_tokens, seconds=seconds, all_seconds=times,
                tokens_per_s=args.prompt_tokens / seconds)


def kv_cache_name(model):
    """The KV cache's name in forward() and its output: `cache` from transformers 5.x on."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def greedy_decode(model, prompt, new_tokens):
    """Untimed prefill, then `new_tokens` timed one-token steps; returns the ids and steps' time."""
    cache = kv_cache_name(model)
    with torch.inference_mode():
        output = model(input_ids=prompt, use_cache=True)
        next_id = output.logits[:, -1:].argmax(-1)
        generated = []
        start = time.perf_counter()
        for _ in range(new_tokens):
            generated.append(int(next_id))
            output = model(input_ids=next_id, use_cache=True, **{cache: output[cache]})
            next_id = output.logits[:, -1:].argmax(-1)
        return generated, time.perf_counter() - start


def bench_decode(model, args):
    prompt = token_ids(args, model.config.vocab_size, args.prompt_tokens)
    greedy_decode(model, prompt, args.new_tokens)
    runs = [greedy_decode(model, prompt, args.new_tokens) for _ in range(args.repeats)]
    times = [seconds for _, seconds in runs]
    seconds = statistics.median(times)
    return dict(prompt_tokens=args.prompt_tokens, new_tokens=args.new_tokens, seconds=seconds,
                all_seconds=times, tokens_per_s=args.new_tokens / seconds,
                generated_ids=runs[0][0])


def lora_model(model):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="CAUSAL_LM", r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                        target_modules=LORA_TARGETS)
    return get_peft_model(model, config).train()


def bench_lora(model, args):
    import peft

    model = lora_model(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LORA_LEARNING_RATE, weight_decay=0.0)
    batch = token_ids(args, model.config.vocab_size, args.lora_length, rows=args.lora_batch,
                      seed_offset=1)
    losses = []

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    seconds, times = median_seconds(train_step, args.steps)
    tokens = args.lora_batch * args.lora_length
    return dict(peft_version=peft.__version__, batch=args.lora_batch, length=args.lora_length,
                rank=LORA_RANK, alpha=LORA_ALPHA, target_modules=LORA_TARGETS, optimizer="AdamW",
                learning_rate=LORA_LEARNING_RATE,
                trainable_parameters=sum(p.numel() for p in trainable), seconds=seconds,
                all_seconds=times, tokens_per_s=tokens / seconds, losses=losses)


def run_one(args):
    """Loads the model and runs `args.only` in this process; the report with its memory fields."""
    torch.set_num_threads(args.threads)
    rss_after_import = resident_mb("VmRSS")
    start = time.perf_counter()
    model = load_model(args.gguf, args.attention)
    load_seconds = time.perf_counter() - start
    release_free_memory()
    memory = dict(rss_after_import_mb=rss_after_import, rss_peak_load_mb=max_rss_mb(),
                  rss_before_mb=resident_mb("VmRSS"))
    memory["peak_reset"] = reset_peak_rss()
    result = dict(bench_prefill=bench_prefill, bench_decode=bench_decode,
                  bench_lora=bench_lora)["bench_" + args.only](model, args)
    memory["peak_rss_mb"] = max_rss_mb()
    result.update(memory, load_seconds=load_seconds,
                  attention=model.config._attn_implementation)
    return result


def run_children(args):
    """Runs each workload in a fresh `--only` child process; their reports by mode."""
    rows = {}
    for mode in MODES:
        command = [sys.executable, os.path.abspath(__file__), "--only", mode] + sys.argv[1:]
        child = subprocess.run(command, stdout=subprocess.PIPE, check=True, text=True)
        rows[mode] = json.loads(child.stdout)["rows"][mode]
    return rows


def describe(mode, row):
    text = f"{mode:8s} {row['tokens_per_s']:10.1f} tokens/s  (median {row['seconds'] * 1e3:.1f} ms"
    return (text + f"; RSS {row['rss_before_mb']:.0f} MiB after load, peak "
            f"{row['peak_rss_mb']:.0f} MiB{'' if row['peak_reset'] else ' incl. loading'})")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=os.environ.get("RECFORGE_SMOLLM2_GGUF"),
                        help="SmolLM2 GGUF file (default: $RECFORGE_SMOLLM2_GGUF)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa",
                        help="transformers' attention implementation (default: its own, sdpa)")
    parser.add_argument("--only", choices=MODES, help="run one workload in this process")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--prompt-ids", type=json.loads,
                        help="JSON list of token ids (repeated or cut to the needed length)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed prefill and decode runs")
    parser.add_argument("--lora-batch", type=int, default=4)
    parser.add_argument("--lora-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed LoRA steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.gguf:
        parser.error("give --gguf or set RECFORGE_SMOLLM2_GGUF")
    if min(args.threads, args.prompt_tokens, args.new_tokens, args.repeats, args.lora_batch,
           args.lora_length, args.steps) < 1:
        parser.error("counts and sizes must be positive")
    if args.prompt_ids is not None and not (
            isinstance(args.prompt_ids, list) and args.prompt_ids
            and all(isinstance(i, int) for i in args.prompt_ids)):
        parser.error("--prompt-ids must be a non-empty JSON list of integers")
    return args


def main():
    args = parse_args()
    load_before = os.getloadavg()
    rows = {args.only: run_one(args)} if args.only else run_children(args)
    report = dict(model=os.path.basename(args.gguf), torch_version=torch.__version__,
                  transformers_version=transformers.__version__, threads=args.threads,
                  dtype="float32", omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                  load_average_before=load_before,
                  load_average_after=os.getloadavg(), rows=rows)
    if args.only:  # without it, each child has written its own line
        log(describe(args.only, rows[args.only]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
