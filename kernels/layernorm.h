// Layer normalization over the last dimension of [N, C] rows, eps = 1e-5:
//   out = (x − mean) · rstd · weight + bias,   rstd = 1 / √(var + eps)   (biased variance)
// mean and rstd [N] are saved for the backward. The fused variant first forms the residual sum.
// The forward's output type Out is T, or bf16 with T = float (the bf16 precision policy: the
// normalized activations feed a bf16 GEMM): the statistics and the residual stay T, the math is
// the same and out is rounded once. The backward is all T.
#pragma once

#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

inline constexpr float kLayerNormEps = 1e-5f;

template <typename Out, typename T>
inline constexpr bool kLayerNormOutput = std::is_same_v<Out, T> ||
                                         (std::is_same_v<Out, bf16> && std::is_same_v<T, float>);

namespace cpu {
template <typename Out, typename T>
void layernorm_forward(Out* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int N, int C);
// residual = a + b, out = layernorm(residual): the pre-LN block's residual add and next norm.
template <typename Out, typename T>
void residual_layernorm_forward(T* residual, Out* out, T* mean, T* rstd, const T* a, const T* b,
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
// Out ∈ {float, bf16}.
template <typename Out>
void layernorm_forward(const Context& ctx, Out* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);
template <typename Out>
void residual_layernorm_forward(const Context& ctx, float* residual, Out* out, float* mean,
                                float* rstd, const float* a, const float* b, const float* weight,
                                const float* bias, int N, int C);
void layernorm_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C);
}  // namespace cuda

template <typename Out, typename T>
void layernorm_forward(const Context& ctx, Out* out, T* mean, T* rstd, const T* inp,
                       const T* weight, const T* bias, int N, int C) {
  static_assert(kLayerNormOutput<Out, T>, "layernorm: out must be T, or bf16 with T = float");
  RECFORGE_CHECK(N >= 0 && C > 0, "layernorm_forward: bad shape N=", N, " C=", C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "layernorm_forward",
      [&](const auto& on) {
        cuda::layernorm_forward(on, out, mean, rstd, inp, weight, bias, N, C);
      },
      [&] { cpu::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C); });
}

template <typename Out, typename T>
void residual_layernorm_forward(const Context& ctx, T* residual, Out* out, T* mean, T* rstd,
                                const T* a, const T* b, const T* weight, const T* bias, int N,
                                int C) {
  static_assert(kLayerNormOutput<Out, T>, "layernorm: out must be T, or bf16 with T = float");
  RECFORGE_CHECK(N >= 0 && C > 0, "residual_layernorm_forward: bad shape N=", N, " C=", C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "residual_layernorm_forward",
      [&](const auto& on) {
        cuda::residual_layernorm_forward(on, residual, out, mean, rstd, a, b, weight, bias, N, C);
      },
      [&] {
        cpu::residual_layernorm_forward(residual, out, mean, rstd, a, b, weight, bias, N, C);
      });
}

template <typename T>
void layernorm_backward(const Context& ctx, T* dinp, T* dweight, T* dbias, const T* dout,
                        const T* inp, const T* weight, const T* mean, const T* rstd, int N, int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, "layernorm_backward: bad shape N=", N, " C=", C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "layernorm_backward",
      [&](const auto& on) {
        cuda::layernorm_backward(on, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
      },
      [&] { cpu::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C); });
}

}  // namespace recforge
