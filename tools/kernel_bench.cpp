#include "tools/kernel_bench.h"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/bf16.h"
#include "kernels/buffer.h"
#include "kernels/classifier.h"
#include "kernels/convert.h"
#include "kernels/gelu.h"
#include "kernels/layernorm.h"
#include "kernels/lora.h"
#include "kernels/matmul.h"
#include "tools/bench_table.h"
#include "tools/gpu_timing.h"

namespace recforge {
namespace {

constexpr double kMiB = 1 << 20;

// Every input is drawn fresh from its own seed: never zeros, never the previous shape's data.
struct Inputs {
  const Context& ctx;
  uint64_t seed = 1;
  Buffer<float> random(size_t n, float lo = -1.0f, float hi = 1.0f) {
    Buffer<float> buffer(ctx.device(), n);
    fill_uniform(ctx, buffer.data(), n, lo, hi, seed++);
    return buffer;
  }
  // The same draw stored as A (rounded to bf16 for bf16 operands).
  template <typename A>
  Buffer<A> random_as(size_t n, float lo = -1.0f, float hi = 1.0f) {
    if constexpr (std::is_same_v<A, float>) {
      return random(n, lo, hi);
    } else {
      Buffer<float> values = random(n, lo, hi);
      Buffer<A> stored(ctx.device(), n);
      convert(ctx, stored.data(), values.data(), static_cast<int64_t>(n));
      return stored;
    }
  }
};

// printf into a std::string (lines of the report, shape keys).
[[gnu::format(printf, 1, 2)]] std::string format(const char* fmt, ...) {
  char text[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  return text;
}

// ---- Attention: B sequences of T tokens each, qkv [B·T, 3, NH, HS] -----------------------------
struct AttentionCase {
  int B, T, NH, HS;
};

// A: the storage type of qkv, out, dout and dqkv (lse and delta are fp32 in both).
template <typename A>
BenchRow bench_attention(const Context& ctx, const GpuTimer& timer, const AttentionCase& c,
                         AttentionMask mask) {
  std::vector<int32_t> offsets(c.B + 1);
  for (int b = 0; b <= c.B; ++b) offsets[b] = b * c.T;
  Buffer<int32_t> device_offsets(ctx.device(), std::span<const int32_t>(offsets));
  PackedSequences seqs{device_offsets.data(), c.B, c.B * c.T, c.T};
  AttentionShape shape{c.NH, c.HS, mask};
  size_t N = size_t(c.B) * c.T, C = shape.channels();
  Inputs in{ctx};
  Buffer<A> qkv = in.random_as<A>(3 * N * C), dout = in.random_as<A>(N * C);
  Buffer<A> out = in.random_as<A>(N * C), dqkv = in.random_as<A>(3 * N * C);
  Buffer<float> lse = in.random(N * c.NH), delta = in.random(N * c.NH);
  double ms = timer.median_ms([&] {
    attention_forward(ctx, out.data(), lse.data(), qkv.data(), seqs, shape);
    attention_backward(ctx, dqkv.data(), delta.data(), dout.data(), qkv.data(), out.data(),
                       lse.data(), seqs, shape);
  });
  // Forward: 2 GEMMs (q·kᵀ, P·v) of 2·T²·HS each per head; backward: 5 (recomputed S, dv, dP, dq,
  // dk): 7 · 2·T²·HS = 14·T²·HS per head and sequence, half of it under the causal mask.
  bool causal = mask == AttentionMask::kCausal;
  double flops = 14.0 * c.B * double(c.T) * c.T * c.NH * c.HS * (causal ? 0.5 : 1.0);
  return {
      "attention_fwd_bwd",
      format("B=%d T=%d NH=%d HS=%d %s", c.B, c.T, c.NH, c.HS, causal ? "causal" : "bidirectional"),
      dtype_name<A>(),
      ms,
      flops,
      true};
}

// ---- Fused classifier cross-entropy: hidden [N, C], wte [V, C], one target per row ------------
// A context of its own, so its scratch growth (cudaMemGetInfo before and after) is this op's.
BenchRow bench_classifier(const KernelBenchOptions& options, int N, int C, int V) {
  Context ctx = Context::cuda();
  GpuTimer timer(ctx, options.warmup, options.repeats);
  size_t free_before = free_device_bytes(ctx);
  Inputs in{ctx};
  Buffer<float> hidden = in.random(size_t(N) * C), wte = in.random(size_t(V) * C, -0.1f, 0.1f);
  Buffer<float> losses = in.random(N), dhidden = in.random(size_t(N) * C);
  Buffer<float> dwte = in.random(size_t(V) * C);
  Buffer<int32_t> targets(ctx.device(), N);
  fill_indices(ctx, targets.data(), N, V, in.seed++);
  auto step = [&] {
    classifier_forward_backward(ctx, losses.data(), dhidden.data(), dwte.data(), hidden.data(),
                                wte.data(), targets.data(), N, C, V, 1.0f / N);
  };
  step();
  double memory_mib = (double(free_before) - double(free_device_bytes(ctx))) / kMiB;
  double ms = timer.median_ms(step);
  // The useful work: logits, dhidden and dwte, three GEMMs of 2·N·C·V (recomputation not counted).
  return {"classifier_ce_fwd_bwd",
          format("N=%d C=%d V=%d", N, C, V),
          "fp32",
          ms,
          6.0 * N * C * double(V),
          true,
          memory_mib};
}

// ---- LoRA linear (frozen base) vs the base matmul alone: inp [N, C], W [OC, C], rank r --------
BenchRow bench_lora(const Context& ctx, const GpuTimer& timer, int N, int C, int OC, int r) {
  Inputs in{ctx};
  Buffer<float> inp = in.random(size_t(N) * C), weight = in.random(size_t(OC) * C, -0.05f, 0.05f);
  Buffer<float> bias = in.random(OC), a = in.random(size_t(r) * C, -0.05f, 0.05f);
  Buffer<float> b = in.random(size_t(OC) * r, -0.05f, 0.05f), dout = in.random(size_t(N) * OC);
  Buffer<float> out = in.random(size_t(N) * OC), u = in.random(size_t(N) * r);
  Buffer<float> dinp = in.random(size_t(N) * C), da = in.random(size_t(r) * C);
  Buffer<float> db = in.random(size_t(OC) * r), du = in.random(size_t(N) * r);
  LoraWeights<float> lora{a.data(), b.data(), r, 2.0f / r, {}};
  double ms = timer.median_ms([&] {
    lora_forward<float>(ctx, out.data(), u.data(), nullptr, inp.data(), weight.data(), bias.data(),
                        lora, N, C, OC);
    lora_backward<float>(ctx, dinp.data(), da.data(), db.data(), du.data(), nullptr, dout.data(),
                         inp.data(), u.data(), weight.data(), lora, N, C, OC);
  });
  // Base forward and dinp: 2 · 2·N·C·OC; adapter: u, out += s·u·Bᵀ, dB, du, dA, dinp += du·A.
  double flops = 4.0 * N * C * double(OC) + 6.0 * N * double(r) * (C + OC);
  return {"lora_fwd_bwd", format("N=%d C=%d OC=%d r=%d", N, C, OC, r), "fp32", ms, flops, true};
}

// The frozen-base linear layer: forward and dinp. bf16: bf16 operands and outputs, fp32 accumulate.
template <typename A>
BenchRow bench_matmul(const Context& ctx, const GpuTimer& timer, int N, int C, int OC) {
  Inputs in{ctx};
  Buffer<A> inp = in.random_as<A>(size_t(N) * C);
  Buffer<A> weight = in.random_as<A>(size_t(OC) * C, -0.05f, 0.05f);
  Buffer<A> bias = in.random_as<A>(OC), dout = in.random_as<A>(size_t(N) * OC);
  Buffer<A> out = in.random_as<A>(size_t(N) * OC), dinp = in.random_as<A>(size_t(N) * C);
  double ms = timer.median_ms([&] {
    matmul_forward(ctx, out.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    matmul_backward(ctx, dinp.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                    dout.data(), inp.data(), weight.data(), N, C, OC);
  });
  return {"matmul_fwd_bwd_frozen",  format("N=%d C=%d OC=%d", N, C, OC),
          dtype_name<A>(),          ms,
          4.0 * N * C * double(OC), true};
}

// ---- Bandwidth-bound ops: bytes = every input read once + every output written once -----------
// Out: the type of the normalized output (bf16 feeds a bf16 GEMM); everything else is fp32.
template <typename Out>
std::vector<BenchRow> bench_layernorm(const Context& ctx, const GpuTimer& timer, int N, int C) {
  Inputs in{ctx};
  size_t NC = size_t(N) * C;
  Buffer<float> inp = in.random(NC), weight = in.random(C), bias = in.random(C);
  Buffer<Out> out = in.random_as<Out>(NC);
  Buffer<float> mean = in.random(N), rstd = in.random(N, 0.5f, 2.0f);
  Buffer<float> dout = in.random(NC), dinp = in.random(NC);
  Buffer<float> dweight = in.random(C), dbias = in.random(C);
  double fwd = timer.median_ms([&] {
    layernorm_forward(ctx, out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                      bias.data(), N, C);
  });
  std::string shape = format("N=%d C=%d", N, C);
  // fwd: inp, weight, bias in; out, mean, rstd out.
  const double fwd_bytes = (4.0 + sizeof(Out)) * NC + 4.0 * (2 * C + 2 * N);
  if constexpr (!std::is_same_v<Out, float>) {
    return {{"layernorm_fwd", shape, dtype_name<Out>(), fwd, fwd_bytes, false}};
  } else {
    double bwd = timer.median_ms([&] {
      layernorm_backward(ctx, dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(),
                         weight.data(), mean.data(), rstd.data(), N, C);
    });
    // bwd: dout, inp, weight, mean, rstd in; dinp, dweight, dbias accumulated (read and written).
    return {{"layernorm_fwd", shape, "fp32", fwd, fwd_bytes, false},
            {"layernorm_bwd", shape, "fp32", bwd, 4.0 * (4.0 * NC + 5 * C + 2 * N), false}};
  }
}

// A: the storage of the pre-activation, the activation and its gradient; the incoming gradient
// (from a GEMM's fp32 output) is fp32 in both.
template <typename A>
std::vector<BenchRow> bench_gelu(const Context& ctx, const GpuTimer& timer, int64_t n) {
  Inputs in{ctx};
  Buffer<A> inp = in.random_as<A>(n, -3, 3), out = in.random_as<A>(n), dinp = in.random_as<A>(n);
  Buffer<float> dout = in.random(n);
  double fwd = timer.median_ms([&] { gelu_forward(ctx, out.data(), inp.data(), n); });
  double bwd =
      timer.median_ms([&] { gelu_backward(ctx, dinp.data(), inp.data(), dout.data(), n); });
  std::string shape = format("n=%lld", static_cast<long long>(n));
  const double a = sizeof(A);
  return {{"gelu_fwd", shape, dtype_name<A>(), fwd, 2 * a * n, false},
          {"gelu_bwd", shape, dtype_name<A>(), bwd, (2 * a + 4) * n, false}};
}

BenchRow bench_adamw(const Context& ctx, const GpuTimer& timer, int64_t n) {
  Inputs in{ctx};
  Buffer<float> params = in.random(n), grads = in.random(n), m = in.random(n, -0.1f, 0.1f);
  Buffer<float> v = in.random(n, 1e-4f, 1e-2f);
  AdamWConfig config{1e-4f, 0.9f, 0.999f, 1e-8f, 0.1f};
  double ms = timer.median_ms([&] {
    adamw_update(ctx, params.data(), grads.data(), m.data(), v.data(), n, n, config, 10);
  });
  // params, grads, m, v read; params, m, v written.
  return {"adamw", format("n=%lld", static_cast<long long>(n)), "fp32", ms, 28.0 * n, false};
}

// ---- The shapes of issue 6 ---------------------------------------------------------------------
constexpr AttentionCase kRecommenderAttention[] = {{256, 50, 1, 32},  {256, 200, 2, 32},
                                                   {1024, 50, 2, 64}, {1024, 200, 4, 64},
                                                   {2048, 50, 4, 32}, {2048, 200, 4, 64}};
constexpr AttentionCase kLlmAttention[] = {
    {8, 1024, 12, 64}, {4, 2048, 16, 128}, {2, 4096, 16, 64}, {1, 8192, 16, 128}};
constexpr int kClassifierRows = 4096, kClassifierWidth = 64;
constexpr int kClassifierItems[] = {12000, 100000, 1000000};
constexpr int kLoraRows = 8192, kLoraWidth = 1024;
constexpr int kLoraRanks[] = {8, 16, 32, 64};
constexpr int kLayerNormShapes[][2] = {{262144, 64}, {16384, 768}};
constexpr int64_t kElementwiseSizes[] = {int64_t{1} << 24, int64_t{1} << 26};
constexpr int64_t kAdamWSizes[] = {10'000'000, 124'000'000};

// The rows of one operand type: attention, the frozen linear layer, layernorm and gelu.
template <typename A>
void run_operand_rows(const Context& ctx, const GpuTimer& timer, std::vector<BenchRow>& rows) {
  for (AttentionMask mask : {AttentionMask::kCausal, AttentionMask::kBidirectional}) {
    for (const AttentionCase& c : kRecommenderAttention)
      rows.push_back(bench_attention<A>(ctx, timer, c, mask));
  }
  for (const AttentionCase& c : kLlmAttention)
    rows.push_back(bench_attention<A>(ctx, timer, c, AttentionMask::kCausal));
  rows.push_back(bench_matmul<A>(ctx, timer, kLoraRows, kLoraWidth, kLoraWidth));
  for (const auto& [N, C] : kLayerNormShapes) {
    for (BenchRow& row : bench_layernorm<A>(ctx, timer, N, C)) rows.push_back(std::move(row));
  }
  for (int64_t n : kElementwiseSizes) {
    for (BenchRow& row : bench_gelu<A>(ctx, timer, n)) rows.push_back(std::move(row));
  }
}

std::vector<BenchRow> run_all(const KernelBenchOptions& options, const Context& ctx,
                              const GpuTimer& timer) {
  std::vector<BenchRow> rows;
  run_operand_rows<float>(ctx, timer, rows);
  run_operand_rows<bf16>(ctx, timer, rows);
  for (int V : kClassifierItems)
    rows.push_back(bench_classifier(options, kClassifierRows, kClassifierWidth, V));
  for (int r : kLoraRanks)
    rows.push_back(bench_lora(ctx, timer, kLoraRows, kLoraWidth, kLoraWidth, r));
  for (int64_t n : kAdamWSizes) rows.push_back(bench_adamw(ctx, timer, n));
  return rows;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return text;
}

}  // namespace

void run_kernel_bench(const KernelBenchOptions& options) {
  Context ctx = Context::cuda();
  GpuTimer timer(ctx, options.warmup, options.repeats);
  GpuInfo gpu = gpu_info(ctx);
  double fp32 = gemm_peak_tflops(ctx, timer, GemmPrecision::kFp32);
  double tf32 = gemm_peak_tflops(ctx, timer, GemmPrecision::kTf32);
  double bf16 = gemm_peak_tflops(ctx, timer, GemmPrecision::kBf16);
  double copy = copy_peak_gbps(ctx, timer);
  std::vector<BenchRow> rows = run_all(options, ctx, timer);

  std::string report = format("# recforge kernel benchmarks\n\n%s, commit %s, %s\n\n",
                              gpu.name.c_str(), options.commit.c_str(), utc_now().c_str());
  report += format(
      "Medians of %d CUDA-event timings after %d warm-up calls; %.0f MiB (2 x L2) written before "
      "every timing.\n",
      options.repeats, options.warmup, 2 * gpu.l2_bytes / kMiB);
  report += format(
      "Measured peaks: cuBLAS 8192^3 GEMM fp32 %.1f, tf32 %.1f, bf16 %.1f TFLOP/s; "
      "device-to-device copy %.0f GB/s (read + write).\n",
      fp32, tf32, bf16, copy);
  report +=
      "% of peak: fp32 TFLOP/s rows against the fp32 GEMM, bf16 rows against the bf16 GEMM (our "
      "attention computes in fp32 on bf16 storage, so its bf16 row is far from that ceiling), "
      "GB/s rows against the copy. memory MiB: the op's inputs, outputs and scratch.\n\n";
  report += markdown_table(rows, {fp32, copy, bf16});
  std::fputs(report.c_str(), stdout);
  if (!options.output.empty()) {
    std::ofstream file(options.output);
    RECFORGE_CHECK(file << report, "cannot write ", options.output);
  }
}

}  // namespace recforge
