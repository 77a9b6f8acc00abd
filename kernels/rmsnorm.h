// RMS normalization over the last dimension of [N, C] rows (Llama's norm: no mean, no bias):
//   out = x · rstd · weight,   rstd = 1 / √(mean_c(x²) + eps)
// rstd [N] is saved for the backward. The fused variant first forms the residual sum, as the
// pre-norm block's residual add and the next norm. Statistics are accumulated in double on the
// CPU and in fp32 (fixed order) on the GPU; the backward's reductions have a fixed order too.
#pragma once

#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int N, int C, float eps);
// residual = a + b, out = rmsnorm(residual).
template <typename T>
void residual_rmsnorm_forward(T* residual, T* out, T* rstd, const T* a, const T* b, const T* weight,
                              int N, int C, float eps);
// With x̂ = x · rstd and g = dout ⊙ weight:
//   dinp += rstd · (g − x̂ · mean_c(g ⊙ x̂)),   dweight += Σ_n dout ⊙ x̂
// Both accumulate (+=), like layernorm_backward; dweight may be null (a frozen norm).
template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, int N, int C);
}  // namespace cpu

namespace cuda {
void rmsnorm_forward(const Context& ctx, float* out, float* rstd, const float* inp,
                     const float* weight, int N, int C, float eps);
void residual_rmsnorm_forward(const Context& ctx, float* residual, float* out, float* rstd,
                              const float* a, const float* b, const float* weight, int N, int C,
                              float eps);
void rmsnorm_backward(const Context& ctx, float* dinp, float* dweight, const float* dout,
                      const float* inp, const float* weight, const float* rstd, int N, int C);
}  // namespace cuda

inline void check_rmsnorm_shape(const char* op, int N, int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, op, ": bad shape N=", N, " C=", C);
}

template <typename T>
void rmsnorm_forward(const Context& ctx, T* out, T* rstd, const T* inp, const T* weight, int N,
                     int C, float eps) {
  check_rmsnorm_shape("rmsnorm_forward", N, C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "rmsnorm_forward",
      [&](const auto& on) { cuda::rmsnorm_forward(on, out, rstd, inp, weight, N, C, eps); },
      [&] { cpu::rmsnorm_forward(out, rstd, inp, weight, N, C, eps); });
}

template <typename T>
void residual_rmsnorm_forward(const Context& ctx, T* residual, T* out, T* rstd, const T* a,
                              const T* b, const T* weight, int N, int C, float eps) {
  check_rmsnorm_shape("residual_rmsnorm_forward", N, C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "residual_rmsnorm_forward",
      [&](const auto& on) {
        cuda::residual_rmsnorm_forward(on, residual, out, rstd, a, b, weight, N, C, eps);
      },
      [&] { cpu::residual_rmsnorm_forward(residual, out, rstd, a, b, weight, N, C, eps); });
}

template <typename T>
void rmsnorm_backward(const Context& ctx, T* dinp, T* dweight, const T* dout, const T* inp,
                      const T* weight, const T* rstd, int N, int C) {
  check_rmsnorm_shape("rmsnorm_backward", N, C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "rmsnorm_backward",
      [&](const auto& on) {
        cuda::rmsnorm_backward(on, dinp, dweight, dout, inp, weight, rstd, N, C);
      },
      [&] { cpu::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C); });
}

}  // namespace recforge
