// Inverted dropout with a counter-based mask: element i of stream `stream` under `seed` is kept iff
// philox_uniform(seed, stream, i) >= p (kernels/math.h). No mask is stored; the backward
// regenerates it, and a seed gives the same mask on the CPU and on the GPU.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

struct DropoutParams {
  float p = 0.0f;       // probability of zeroing an element, in [0, 1)
  uint64_t seed = 0;    // per training step
  uint64_t stream = 0;  // per call site (layer and position in the block)
};

namespace cpu {
// out[i] = inp[i] · keep(i) / (1 − p); out may alias inp.
template <typename T>
void dropout_forward(T* out, const T* inp, int64_t n, const DropoutParams& params);
// dinp[i] = dout[i] · keep(i) / (1 − p); dinp may alias dout.
template <typename T>
void dropout_backward(T* dinp, const T* dout, int64_t n, const DropoutParams& params);
}  // namespace cpu

namespace cuda {
void dropout_forward(const Context& ctx, float* out, const float* inp, int64_t n,
                     const DropoutParams& params);
void dropout_backward(const Context& ctx, float* dinp, const float* dout, int64_t n,
                      const DropoutParams& params);
}  // namespace cuda

void validate_dropout(const DropoutParams& params);

template <typename T>
void dropout_forward(const Context& ctx, T* out, const T* inp, int64_t n,
                     const DropoutParams& params) {
  validate_dropout(params);
  dispatch<std::is_same_v<T, float>>(
      ctx, "dropout_forward",
      [&](const auto& on) { cuda::dropout_forward(on, out, inp, n, params); },
      [&] { cpu::dropout_forward(out, inp, n, params); });
}

template <typename T>
void dropout_backward(const Context& ctx, T* dinp, const T* dout, int64_t n,
                      const DropoutParams& params) {
  validate_dropout(params);
  dispatch<std::is_same_v<T, float>>(
      ctx, "dropout_backward",
      [&](const auto& on) { cuda::dropout_backward(on, dinp, dout, n, params); },
      [&] { cpu::dropout_backward(dinp, dout, n, params); });
}

}  // namespace recforge
