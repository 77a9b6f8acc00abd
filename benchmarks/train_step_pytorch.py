"""The model of `recforge bench train-step`, written in PyTorch, timed and reported the same way.

A GPT-style decoder (pre-LayerNorm blocks, learned positions, tanh-GELU MLP of width 4·C, output
layer tied to the token embedding, no dropout). One step is forward, full-softmax cross-entropy
(the last position of each sequence has no target, as in recforge's synthetic batch), backward,
gradient clipping at norm 1 and AdamW (lr 1e-3, no weight decay: recforge's AdamWConfig defaults;
fused on CUDA when this PyTorch has it).

Presets and overrides are recforge's: `beauty` (d_model 64, 2 layers, 2 heads, 128 sequences × 50
tokens, vocabulary 12,102) and `gpt2-small` (12 layers, 768 wide, 12 heads, 8 × 1024 tokens,
vocabulary 50,257). `--precision bf16` is torch.autocast(bfloat16) around the forward and the loss
with fp32 master weights, gradients and AdamW state: recforge's bf16 policy. `--compile` wraps the
model in torch.compile (PyTorch 2.x; its compilation happens during the warm-up steps).

Prints the median step time as "N ms" on its first line, then the same lines as recforge (tokens/s,
model FLOPs, achieved TFLOP/s, the GEMM peak measured in this process, MFU); `--json PATH` writes
the same fields. The FLOP model is tools/model_flops.h's: per token forward 2·(matmul weights, the
tied output layer included) + 2·2·T_eff·C per layer with T_eff = (T + 1)/2 keys under the causal
mask; training = 3 × forward. Works with PyTorch 1.13 (no SDPA: explicit masked attention; no
torch.compile) and 2.x.
"""
import argparse
import inspect
import json
import math
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "beauty": dict(sequences=128, length=50, vocab=12102, d_model=64, layers=2, heads=2),
    "gpt2-small": dict(sequences=8, length=1024, vocab=50257, d_model=768, layers=12, heads=12),
}
MLP_RATIO = 4


class Block(nn.Module):
    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, MLP_RATIO * d_model)
        self.proj = nn.Linear(MLP_RATIO * d_model, d_model)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            y = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class Decoder(nn.Module):
    def __init__(self, vocab, max_len, d_model, n_layer, n_head):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, tokens, targets):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))


def train_step_flops(shape):
    """tools/model_flops.h's counts for B full causal sequences of T tokens."""
    c, layers, t = shape["d_model"], shape["layers"], shape["length"]
    tokens = shape["sequences"] * t
    matmul_parameters = layers * (4 + 2 * MLP_RATIO) * c * c + shape["vocab"] * c
    attended_keys = shape["sequences"] * t * (t + 1) / 2
    matmul = 2.0 * matmul_parameters * tokens
    attention = 4.0 * layers * c * attended_keys
    return dict(tokens=tokens, matmul_parameters=matmul_parameters, attended_keys=attended_keys,
                matmul=matmul, attention=attention, forward=matmul + attention,
                training=3 * (matmul + attention))


def timed_median_ms(op, device, warmup, repeats):
    """Median milliseconds of op(): CUDA events on the GPU, the host clock on the CPU."""
    for _ in range(warmup):
        op()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            op()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start = time.perf_counter()
            op()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def allow_tf32(enabled):
    """fp32 GEMMs in TF32 or in full fp32 (PyTorch 2.9's fp32_precision, else allow_tf32)."""
    if hasattr(torch.backends, "fp32_precision"):  # PyTorch 2.9 and later
        torch.backends.cuda.matmul.fp32_precision = "tf32" if enabled else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled


def gemm_tflops(n, dtype, device, tf32=False):
    """TFLOP/s of an n×n×n torch.mm in `dtype` (fp32 accumulation); TF32 off again afterwards."""
    a = torch.rand(n, n, device=device).to(dtype)
    b = torch.rand(n, n, device=device).to(dtype)
    allow_tf32(tf32)
    try:
        ms = timed_median_ms(lambda: torch.mm(a, b), device, 2, 10 if device == "cuda" else 5)
    finally:
        allow_tf32(False)
    return 2.0 * n ** 3 / (ms * 1e9)


def measured_peaks(device, n):
    """tools/measured_peak.h in PyTorch: bf16, tf32, fp32 GEMMs on CUDA, fp32 on the CPU."""
    if device == "cuda":
        n = n or 8192
        return dict(device_name=torch.cuda.get_device_name(), method=f"torch.mm {n}^3 GEMM",
                    bf16=gemm_tflops(n, torch.bfloat16, device),
                    tf32=gemm_tflops(n, torch.float32, device, tf32=True),
                    fp32=gemm_tflops(n, torch.float32, device))
    n = n or 2048
    return dict(device_name=cpu_model_name(),
                method=f"torch.mm {n}^3 GEMM, {torch.get_num_threads()} threads",
                bf16=None, tf32=None, fp32=gemm_tflops(n, torch.float32, device))


def cpu_model_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="beauty")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", "--repeats", dest="steps", type=int, default=20)
    for name in PRESETS["beauty"]:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=None,
                            help=f"{name} (default: the preset's)")
    parser.add_argument("--peak-size", type=int, default=0,
                        help="n of the n^3 peak GEMM (default: 8192 on CUDA, 2048 on the CPU)")
    parser.add_argument("--json", help="also write every reported field to this JSON file")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be positive and --warmup non-negative")
    if args.compile and args.warmup < 1:
        parser.error("--compile needs --warmup >= 1 (the first step compiles)")
    return args


def make_step(args, shape):
    """One training step of a fresh model, synchronized; and whether AdamW is the fused one."""
    device = args.device
    torch.manual_seed(0)
    model = Decoder(shape["vocab"], shape["length"], shape["d_model"], shape["layers"],
                    shape["heads"]).to(device)
    fused = device == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0,
                                  **(dict(fused=True) if fused else {}))
    step_model = torch.compile(model) if args.compile else model
    tokens = torch.randint(0, shape["vocab"], (shape["sequences"], shape["length"]), device=device)
    targets = torch.roll(tokens, -1, dims=1)
    targets[:, -1] = -100

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16,
                            enabled=args.precision == "bf16"):
            loss = step_model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step, fused


def report(args, shape, peaks, times, first_ms, fused):
    """Prints recforge's lines and returns the --json record."""
    flops = train_step_flops(shape)
    median = statistics.median(times)
    tokens_per_s = flops["tokens"] / (median / 1e3)
    achieved = flops["training"] / (median * 1e9)
    reference_precision = "bf16" if peaks["bf16"] else "fp32"
    reference, own = peaks[reference_precision], peaks[args.precision]
    implementation = "pytorch-compile" if args.compile else "pytorch-eager"
    threads = torch.get_num_threads() if args.device == "cpu" else 0

    print(f"{median:.2f} ms")
    print(f"{implementation} (PyTorch {torch.__version__}) on {args.device}, "
          f"{peaks['device_name']} ({threads} threads): {shape}, {args.precision}; "
          f"preset {args.preset}")
    print(f"median {median:.2f} ms, min {min(times):.2f} ms, max {max(times):.2f} ms over "
          f"{args.steps} steps after {args.warmup} warm-up (first step {first_ms:.0f} ms); "
          f"{tokens_per_s:.0f} tokens/s")
    print(f"model FLOPs per step {flops['training']:.4g} = 3 x forward ({flops['matmul']:.4g} "
          f"matmul over {flops['matmul_parameters']} weights per token + "
          f"{flops['attention']:.4g} attention over "
          f"{flops['attended_keys'] / flops['tokens']:.1f} keys per token)")
    print(f"achieved {achieved:.3f} TFLOP/s")
    measured = ", ".join(f"{p} {peaks[p]:.6g}" for p in ("bf16", "tf32", "fp32") if peaks[p])
    print(f"measured peak ({peaks['method']}): {measured} TFLOP/s")
    line = f"MFU {100 * achieved / reference:.2f}% of the {reference_precision} peak"
    if own and own != reference:
        line += f"; {100 * achieved / own:.2f}% of the {args.precision} peak"
    print(line)

    return dict(
        implementation=implementation, preset=args.preset, device=args.device,
        device_name=peaks["device_name"], threads=threads, precision=args.precision, **shape,
        mlp_ratio=MLP_RATIO, tokens_per_step=flops["tokens"], warmup=args.warmup,
        steps=args.steps, ms=median, ms_min=min(times), ms_max=max(times), first_step_ms=first_ms,
        tokens_per_s=tokens_per_s, matmul_parameters=flops["matmul_parameters"],
        flops_per_step=flops["training"], forward_flops_per_step=flops["forward"],
        attention_flops_per_step=flops["attention"], achieved_tflops=achieved,
        peak_method=peaks["method"], peak_bf16_tflops=peaks["bf16"],
        peak_tf32_tflops=peaks["tf32"], peak_fp32_tflops=peaks["fp32"], peak_tflops=reference,
        peak_precision=reference_precision, mfu=achieved / reference,
        mfu_own_precision=achieved / own if own else None, torch_version=torch.__version__,
        fused_adamw=fused,
        attention="sdpa" if hasattr(F, "scaled_dot_product_attention") else "explicit")


def main():
    args = parse_args()
    if args.compile and not hasattr(torch, "compile"):
        sys.exit("--compile needs torch.compile (PyTorch 2.x); "
                 f"this is PyTorch {torch.__version__}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: this PyTorch sees no CUDA device")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    shape = {name: getattr(args, name) or value for name, value in PRESETS[args.preset].items()}
    allow_tf32(False)  # fp32 means fp32, as in recforge's cuBLASLt GEMMs

    peaks = measured_peaks(args.device, args.peak_size)
    step, fused = make_step(args, shape)
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    record = report(args, shape, peaks, times[args.warmup:], times[0], fused)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(record, out, indent=2, sort_keys=True)
            out.write("\n")


if __name__ == "__main__":
    main()
