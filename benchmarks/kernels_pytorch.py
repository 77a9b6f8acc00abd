#!/usr/bin/env python3
"""PyTorch equivalents of `recforge bench kernels`, at the same shapes and with the same row keys.

Each op is timed with CUDA events (median of --repeats after --warmup calls), writing a buffer twice
the L2 size before every timing, on fresh random inputs. Work counts (FLOPs, bytes) are the formulas
of tools/kernel_bench.cpp, so the rates compare time for the same work. The shape lists mirror
kernel_bench.cpp's; keep them in step.
  attention_fwd_bwd      torch.nn.functional.scaled_dot_product_attention forward + backward
  classifier_ce_fwd_bwd  unfused: logits = hidden @ wteᵀ, cross_entropy, backward (peak memory)
  matmul / lora          F.linear with a frozen base (+ the low-rank adapter)
  layernorm, gelu        F.layer_norm, F.gelu(approximate="tanh"), forward and backward
  adamw                  torch.optim.AdamW(fused=True) step
Attention, the linear layer, layernorm and gelu run in fp32 and in bf16 (PyTorch's flash backend of
scaled_dot_product_attention needs bf16/fp16: the fp32 rows use its other backends); the classifier,
LoRA and AdamW rows are fp32. Rows are keyed by (kernel, shape, dtype).
Usage: kernels_pytorch.py [--repeats 50] [--warmup 10] [--output FILE.md]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

RECOMMENDER_ATTENTION = [(256, 50, 1, 32), (256, 200, 2, 32), (1024, 50, 2, 64),
                         (1024, 200, 4, 64), (2048, 50, 4, 32), (2048, 200, 4, 64)]
LLM_ATTENTION = [(8, 1024, 12, 64), (4, 2048, 16, 128), (2, 4096, 16, 64), (1, 8192, 16, 128)]
CLASSIFIER_ROWS, CLASSIFIER_WIDTH, CLASSIFIER_ITEMS = 4096, 64, [12000, 100000, 1000000]
LORA_ROWS, LORA_WIDTH, LORA_RANKS = 8192, 1024, [8, 16, 32, 64]
LAYERNORM_SHAPES = [(262144, 64), (16384, 768)]
ELEMENTWISE_SIZES = [1 << 24, 1 << 26]
ADAMW_SIZES = [10_000_000, 124_000_000]
MIB = 1 << 20


class Timer:
    def __init__(self, warmup, repeats):
        self.warmup, self.repeats = warmup, repeats
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        self.flush = torch.empty(2 * l2, dtype=torch.uint8, device="cuda")

    def median_ms(self, fn):
        for _ in range(self.warmup):
            fn()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.repeats)]
        for i, (start, end) in enumerate(events):
            self.flush.fill_(i & 0xFF)
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return statistics.median(start.elapsed_time(end) for start, end in events)


def uniform(shape, dtype, lo=-1.0, hi=1.0, grad=False):
    x = torch.rand(shape, device="cuda", dtype=torch.float32) * (hi - lo) + lo
    return x.to(dtype).requires_grad_(grad)


def attention(timer, dtype, B, T, NH, HS, causal):
    q, k, v = (uniform((B, NH, T, HS), dtype, grad=True) for _ in range(3))
    dout = uniform((B, NH, T, HS), dtype)

    def step():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.autograd.grad(out, (q, k, v), dout)

    flops = 14.0 * B * T * T * NH * HS * (0.5 if causal else 1.0)
    mask = "causal" if causal else "bidirectional"
    return dict(kernel="attention_fwd_bwd", shape=f"B={B} T={T} NH={NH} HS={HS} {mask}",
                ms=timer.median_ms(step), work=flops, flops=True)


def classifier(timer, dtype, N, C, V):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()  # the L2 flush buffer and the cuBLAS workspace
    hidden = uniform((N, C), dtype, grad=True)
    wte = uniform((V, C), dtype, -0.1, 0.1, grad=True)
    targets = torch.randint(0, V, (N,), device="cuda")

    def step():
        loss = F.cross_entropy(hidden @ wte.t(), targets)
        torch.autograd.grad(loss, (hidden, wte))

    step()
    torch.cuda.synchronize()
    memory = (torch.cuda.max_memory_allocated() - base) / MIB
    return dict(kernel="classifier_ce_fwd_bwd", shape=f"N={N} C={C} V={V}",
                ms=timer.median_ms(step), work=6.0 * N * C * V, flops=True, memory=memory)


def linear(timer, dtype, N, C, OC, r=None):
    x = uniform((N, C), dtype, grad=True)
    w, b = uniform((OC, C), dtype, -0.05, 0.05), uniform((OC,), dtype)
    dout = uniform((N, OC), dtype)
    if r is None:
        def step():
            torch.autograd.grad(F.linear(x, w, b), x, dout)

        return dict(kernel="matmul_fwd_bwd_frozen", shape=f"N={N} C={C} OC={OC}",
                    ms=timer.median_ms(step), work=4.0 * N * C * OC, flops=True)
    a = uniform((r, C), dtype, -0.05, 0.05, grad=True)
    bb = uniform((OC, r), dtype, -0.05, 0.05, grad=True)
    scale = 2.0 / r

    def step():
        out = F.linear(x, w, b) + scale * F.linear(F.linear(x, a), bb)
        torch.autograd.grad(out, (x, a, bb), dout)

    return dict(kernel="lora_fwd_bwd", shape=f"N={N} C={C} OC={OC} r={r}",
                ms=timer.median_ms(step), work=4.0 * N * C * OC + 6.0 * N * r * (C + OC),
                flops=True)


def layernorm(timer, dtype, N, C):
    x = uniform((N, C), dtype, grad=True)
    w, b = uniform((C,), dtype, grad=True), uniform((C,), dtype, grad=True)
    dout = uniform((N, C), dtype)
    with torch.no_grad():
        fwd = timer.median_ms(lambda: F.layer_norm(x, (C,), w, b))
    out = F.layer_norm(x, (C,), w, b)
    bwd = timer.median_ms(lambda: torch.autograd.grad(out, (x, w, b), dout, retain_graph=True))
    shape, e = f"N={N} C={C}", x.element_size()
    return [dict(kernel="layernorm_fwd", shape=shape, ms=fwd, work=e * (2 * N * C + 2 * C + 2 * N),
                 flops=False),
            dict(kernel="layernorm_bwd", shape=shape, ms=bwd, work=e * (4 * N * C + 5 * C + 2 * N),
                 flops=False)]


def gelu(timer, dtype, n):
    x = uniform((n,), dtype, -3, 3, grad=True)
    dout = uniform((n,), dtype)
    with torch.no_grad():
        fwd = timer.median_ms(lambda: F.gelu(x, approximate="tanh"))
    out = F.gelu(x, approximate="tanh")
    bwd = timer.median_ms(lambda: torch.autograd.grad(out, x, dout, retain_graph=True))
    e = x.element_size()
    return [dict(kernel="gelu_fwd", shape=f"n={n}", ms=fwd, work=2.0 * e * n, flops=False),
            dict(kernel="gelu_bwd", shape=f"n={n}", ms=bwd, work=3.0 * e * n, flops=False)]


def adamw(timer, n):
    param = torch.nn.Parameter(uniform((n,), torch.float32))
    param.grad = uniform((n,), torch.float32)
    optimizer = torch.optim.AdamW([param], lr=1e-4, weight_decay=0.1, fused=True)
    optimizer.step()  # creates the moments; then give them non-trivial values
    state = optimizer.state[param]
    state["exp_avg"].uniform_(-0.1, 0.1)
    state["exp_avg_sq"].uniform_(1e-4, 1e-2)
    return dict(kernel="adamw", shape=f"n={n}", ms=timer.median_ms(optimizer.step),
                work=28.0 * n, flops=False)


def operand_rows(timer, dtype):
    """The rows recforge runs in both storage types."""
    rows = []
    for causal in (True, False):
        rows += [attention(timer, dtype, *shape, causal) for shape in RECOMMENDER_ATTENTION]
    rows += [attention(timer, dtype, *shape, True) for shape in LLM_ATTENTION]
    rows.append(linear(timer, dtype, LORA_ROWS, LORA_WIDTH, LORA_WIDTH))
    for N, C in LAYERNORM_SHAPES:
        rows += layernorm(timer, dtype, N, C)
    for n in ELEMENTWISE_SIZES:
        rows += gelu(timer, dtype, n)
    return rows


def peaks(timer):
    torch.backends.cuda.matmul.allow_tf32 = False
    flops = 2 * 8192**3
    a, b = uniform((8192, 8192), torch.float32), uniform((8192, 8192), torch.float32)
    gemm = flops / (timer.median_ms(lambda: a @ b) * 1e9)
    a, b = a.bfloat16(), b.bfloat16()
    bf16_gemm = flops / (timer.median_ms(lambda: a @ b) * 1e9)
    src = uniform((1 << 28,), torch.float32)
    dst = torch.empty_like(src)
    copy = 2 * src.numel() * 4 / (timer.median_ms(lambda: dst.copy_(src)) * 1e6)
    return gemm, bf16_gemm, copy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output")
    args = parser.parse_args()
    timer = Timer(args.warmup, args.repeats)
    gemm, bf16_gemm, copy = peaks(timer)

    rows = []
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rows += [dict(row, dtype=name) for row in operand_rows(timer, dtype)]
    fp32 = torch.float32
    rows += [classifier(timer, fp32, CLASSIFIER_ROWS, CLASSIFIER_WIDTH, V)
             for V in CLASSIFIER_ITEMS]
    rows += [linear(timer, fp32, LORA_ROWS, LORA_WIDTH, LORA_WIDTH, r) for r in LORA_RANKS]
    rows += [adamw(timer, n) for n in ADAMW_SIZES]

    lines = [f"# PyTorch {torch.__version__} kernel benchmarks", "",
             f"{torch.cuda.get_device_name(0)}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", f"Medians of {args.repeats} CUDA-event timings after {args.warmup} warm-up calls; "
             "2 x L2 written before every timing.",
             f"Measured peaks: torch 8192^3 matmul fp32 {gemm:.1f}, bf16 {bf16_gemm:.1f} TFLOP/s; "
             f"copy {copy:.0f} GB/s.",
             "", "| kernel | shape | dtype | median ms | rate | unit | % of peak | memory MiB |",
             "|---|---|---|---:|---:|---|---:|---:|"]
    for row in rows:
        rate = row["work"] / (row["ms"] * (1e9 if row["flops"] else 1e6))
        dt = row.get("dtype", "fp32")
        peak = (bf16_gemm if dt == "bf16" else gemm) if row["flops"] else copy
        memory = f"{row['memory']:.1f}" if "memory" in row else ""
        lines.append(f"| {row['kernel']} | {row['shape']} | {dt} | {row['ms']:.4f} | {rate:.2f} | "
                     f"{'TFLOP/s' if row['flops'] else 'GB/s'} | {100 * rate / peak:.1f} | {memory} |")
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
