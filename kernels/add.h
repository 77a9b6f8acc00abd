// y += x over n contiguous elements: two gradient branches that meet (the q, k and v projections'
// input gradients, the gate and up projections'), summed in place.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
template <typename T>
void add_into(T* y, const T* x, int64_t n);
}  // namespace cpu

namespace cuda {
void add_into(const Context& ctx, float* y, const float* x, int64_t n);
}  // namespace cuda

template <typename T>
void add_into(const Context& ctx, T* y, const T* x, int64_t n) {
  RECFORGE_CHECK(n >= 0, "add_into: negative size ", n);
  dispatch<std::is_same_v<T, float>>(
      ctx, "add_into", [&](const auto& on) { cuda::add_into(on, y, x, n); },
      [&] { cpu::add_into(y, x, n); });
}

}  // namespace recforge
