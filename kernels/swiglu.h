// The SwiGLU gate of Llama's MLP over [N, F] rows: out = silu(gate) ⊙ up, silu(x) = x·σ(x).
// Backward (outputs overwritten): dgate = dout ⊙ up ⊙ silu'(gate), dup = dout ⊙ silu(gate), with
// silu'(x) = σ(x)·(1 + x·(1 − σ(x))). The element math is swiglu_* in kernels/math.h.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n);
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n);
}  // namespace cpu

namespace cuda {
void swiglu_forward(const Context& ctx, float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward(const Context& ctx, float* dgate, float* dup, const float* dout,
                     const float* gate, const float* up, int64_t n);
}  // namespace cuda

template <typename T>
void swiglu_forward(const Context& ctx, T* out, const T* gate, const T* up, int64_t n) {
  RECFORGE_CHECK(n >= 0, "swiglu_forward: negative size ", n);
  dispatch<std::is_same_v<T, float>>(
      ctx, "swiglu_forward", [&](const auto& on) { cuda::swiglu_forward(on, out, gate, up, n); },
      [&] { cpu::swiglu_forward(out, gate, up, n); });
}

template <typename T>
void swiglu_backward(const Context& ctx, T* dgate, T* dup, const T* dout, const T* gate,
                     const T* up, int64_t n) {
  RECFORGE_CHECK(n >= 0, "swiglu_backward: negative size ", n);
  dispatch<std::is_same_v<T, float>>(
      ctx, "swiglu_backward",
      [&](const auto& on) { cuda::swiglu_backward(on, dgate, dup, dout, gate, up, n); },
      [&] { cpu::swiglu_backward(dgate, dup, dout, gate, up, n); });
}

}  // namespace recforge
