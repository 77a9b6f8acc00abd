// LoRA layer on the GPU: cuBLASLt GEMMs (kernels/matmul.cu's `gemm`, fp32) for the base layer and
// the two thin products through the rank-r bottleneck, the low-rank term accumulated into the
// base output with beta = 1; dropout reuses the Philox mask of kernels/dropout.cu. The masked
// dinp term is one elementwise kernel calling the same dropout_multiplier as the CPU backend.

#include "kernels/cuda_common.cuh"
#include "kernels/lora.h"
#include "kernels/matmul.h"

namespace recforge::cuda {
namespace {

// dinp[i] += masked[i] · keep(i) / (1 − p)
__global__ void add_dropout_gradient(float* dinp, const float* masked, int64_t n, float p,
                                     uint64_t seed, uint64_t stream) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    dinp[i] += masked[i] * dropout_multiplier(p, seed, stream, static_cast<uint64_t>(i));
  }
}

}  // namespace

void lora_forward(const Context& ctx, float* out, float* u, float* dropped, const float* inp,
                  const float* weight, const float* bias, const LoraWeights<float>& lora, int N,
                  int C, int OC) {
  if (N == 0) return;
  const int r = lora.rank;
  const float* x = inp;
  if (lora.dropout.p > 0.0f) {
    dropout_forward(ctx, dropped, inp, static_cast<int64_t>(N) * C, lora.dropout);
    x = dropped;
  }
  // u[N, r] = drop(inp) · Aᵀ
  gemm(ctx, Transpose::kNo, Transpose::kYes, N, r, C, x, C, lora.a, C, 0.0f, u, r);
  // out[N, OC] = inp · Wᵀ + b, then out += s · u · Bᵀ
  matmul_forward(ctx, out, inp, weight, bias, N, C, OC);
  gemm(ctx, Transpose::kNo, Transpose::kYes, N, OC, r, lora.scale, u, r, lora.b, r, 1.0f, out, OC);
}

void lora_backward(const Context& ctx, float* dinp, float* dlora_a, float* dlora_b, float* du,
                   float* dropped, const float* dout, const float* inp, const float* u,
                   const float* weight, const LoraWeights<float>& lora, int N, int C, int OC) {
  if (N == 0) return;
  const int r = lora.rank;
  const float s = lora.scale;
  const bool drop = lora.dropout.p > 0.0f;
  // dB[OC, r] += s · doutᵀ · u;  du[N, r] = s · dout · B
  gemm(ctx, Transpose::kYes, Transpose::kNo, OC, r, N, s, dout, OC, u, r, 1.0f, dlora_b, r);
  gemm(ctx, Transpose::kNo, Transpose::kNo, N, r, OC, s, dout, OC, lora.b, r, 0.0f, du, r);
  // dA[r, C] += duᵀ · drop(inp)
  const float* x = inp;
  if (drop) {
    dropout_forward(ctx, dropped, inp, static_cast<int64_t>(N) * C, lora.dropout);
    x = dropped;
  }
  gemm(ctx, Transpose::kYes, Transpose::kNo, r, C, N, du, r, x, C, 1.0f, dlora_a, C);
  // dinp[N, C] = dout · W + drop'(du · A)
  gemm(ctx, Transpose::kNo, Transpose::kNo, N, C, OC, dout, OC, weight, C, 0.0f, dinp, C);
  if (!drop) {
    gemm(ctx, Transpose::kNo, Transpose::kNo, N, C, r, du, r, lora.a, C, 1.0f, dinp, C);
    return;
  }
  gemm(ctx, Transpose::kNo, Transpose::kNo, N, C, r, du, r, lora.a, C, 0.0f, dropped, C);
  const int64_t n = static_cast<int64_t>(N) * C;
  add_dropout_gradient<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      dinp, dropped, n, lora.dropout.p, lora.dropout.seed, lora.dropout.stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
