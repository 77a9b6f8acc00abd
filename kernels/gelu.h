// GELU (tanh approximation) over n contiguous elements; the math lives in kernels/math.h.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"

namespace recforge {

namespace cpu {
// out[i] = gelu(inp[i]); out may alias inp.
template <typename T>
void gelu_forward(T* out, const T* inp, int64_t n);
// dinp[i] = gelu'(inp[i]) · dout[i]; dinp may alias dout.
template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, int64_t n);
}  // namespace cpu

namespace cuda {
void gelu_forward(const Context& ctx, float* out, const float* inp, int64_t n);
void gelu_backward(const Context& ctx, float* dinp, const float* inp, const float* dout, int64_t n);
}  // namespace cuda

template <typename T>
void gelu_forward(const Context& ctx, T* out, const T* inp, int64_t n) {
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) return cuda::gelu_forward(ctx, out, inp, n);
  }
  require_cpu(ctx, "gelu_forward");
  cpu::gelu_forward(out, inp, n);
}

template <typename T>
void gelu_backward(const Context& ctx, T* dinp, const T* inp, const T* dout, int64_t n) {
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) return cuda::gelu_backward(ctx, dinp, inp, dout, n);
  }
  require_cpu(ctx, "gelu_backward");
  cpu::gelu_backward(dinp, inp, dout, n);
}

}  // namespace recforge
