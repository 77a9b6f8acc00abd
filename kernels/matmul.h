// Dense layer over a packed batch: out[N, OC] = inp[N, C] · weight[OC, C]ᵀ + bias[OC].
// The CPU backend splits the rows across threads and runs a single-threaded BLAS GEMM per slice;
// the CUDA backend calls cuBLASLt (bias fused as an epilogue).
#pragma once

#include <type_traits>

#include "kernels/context.h"

namespace recforge {

namespace cpu {
// bias may be null.
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC);
// dinp[N, C] = dout · weight (overwritten); dweight[OC, C] += doutᵀ · inp; dbias[OC] += Σ_n dout.
// Any of dinp, dweight, dbias may be null to skip it (a frozen weight computes no dweight).
template <typename T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC);
}  // namespace cpu

namespace cuda {
void matmul_forward(const Context& ctx, float* out, const float* inp, const float* weight,
                    const float* bias, int N, int C, int OC);
void matmul_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, int N, int C,
                     int OC);
}  // namespace cuda

inline void validate_matmul(const char* op, int N, int C, int OC) {
  RECFORGE_CHECK(N >= 0 && C > 0 && OC > 0, op, ": bad shape N=", N, " C=", C, " OC=", OC);
}

template <typename T>
void matmul_forward(const Context& ctx, T* out, const T* inp, const T* weight, const T* bias, int N,
                    int C, int OC) {
  validate_matmul("matmul_forward", N, C, OC);
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) return cuda::matmul_forward(ctx, out, inp, weight, bias, N, C, OC);
  }
  require_cpu(ctx, "matmul_forward");
  cpu::matmul_forward(out, inp, weight, bias, N, C, OC);
}

template <typename T>
void matmul_backward(const Context& ctx, T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                     const T* weight, int N, int C, int OC) {
  validate_matmul("matmul_backward", N, C, OC);
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) {
      return cuda::matmul_backward(ctx, dinp, dweight, dbias, dout, inp, weight, N, C, OC);
    }
  }
  require_cpu(ctx, "matmul_backward");
  cpu::matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

}  // namespace recforge
