// Layer normalization over the last dimension of [N, C] rows, eps = 1e-5:
//   out = (x − mean) · rstd · weight + bias,   rstd = 1 / √(var + eps)   (biased variance)
// mean and rstd [N] are saved for the backward. The fused variant first forms the residual sum.
#pragma once

#include <type_traits>

#include "kernels/context.h"

namespace recforge {

inline constexpr float kLayerNormEps = 1e-5f;

namespace cpu {
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int N, int C);
// residual = a + b, out = layernorm(residual): the pre-LN block's residual add and next norm.
template <typename T>
void residual_layernorm_forward(T* residual, T* out, T* mean, T* rstd, const T* a, const T* b,
                                const T* weight, const T* bias, int N, int C);
// With x̂ = (x − mean)·rstd and g = dout ⊙ weight:
//   dinp += rstd · (g − mean_c(g) − x̂ · mean_c(g ⊙ x̂)),  dweight += Σ_n dout ⊙ x̂,  dbias += Σ_n
//   dout
// Everything accumulates (+=), so the residual stream's gradient adds in place. dweight and dbias
// may be null (frozen norm).
template <typename T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int N, int C);
}  // namespace cpu

namespace cuda {
void layernorm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);
void residual_layernorm_forward(const Context& ctx, float* residual, float* out, float* mean,
                                float* rstd, const float* a, const float* b, const float* weight,
                                const float* bias, int N, int C);
void layernorm_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C);
}  // namespace cuda

template <typename T>
void layernorm_forward(const Context& ctx, T* out, T* mean, T* rstd, const T* inp, const T* weight,
                       const T* bias, int N, int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, "layernorm_forward: bad shape N=", N, " C=", C);
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda())
      return cuda::layernorm_forward(ctx, out, mean, rstd, inp, weight, bias, N, C);
  }
  require_cpu(ctx, "layernorm_forward");
  cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}

template <typename T>
void residual_layernorm_forward(const Context& ctx, T* residual, T* out, T* mean, T* rstd,
                                const T* a, const T* b, const T* weight, const T* bias, int N,
                                int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, "residual_layernorm_forward: bad shape N=", N, " C=", C);
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) {
      return cuda::residual_layernorm_forward(ctx, residual, out, mean, rstd, a, b, weight, bias, N,
                                              C);
    }
  }
  require_cpu(ctx, "residual_layernorm_forward");
  cpu::residual_layernorm_forward(residual, out, mean, rstd, a, b, weight, bias, N, C);
}

template <typename T>
void layernorm_backward(const Context& ctx, T* dinp, T* dweight, T* dbias, const T* dout,
                        const T* inp, const T* weight, const T* mean, const T* rstd, int N, int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, "layernorm_backward: bad shape N=", N, " C=", C);
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) {
      return cuda::layernorm_backward(ctx, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N,
                                      C);
    }
  }
  require_cpu(ctx, "layernorm_backward");
  cpu::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

}  // namespace recforge
