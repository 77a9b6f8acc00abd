// Element-type conversion between fp32 and bf16 over n contiguous elements (the bf16 copies of the
// block weights, bf16 activations read back in fp32):
//   float → bf16: round to nearest, ties to even (float_to_bf16 in kernels/bf16.h): NaN stays a
//                 quiet NaN with its sign, magnitudes past the largest bf16 become ±∞;
//   bf16 → float: exact (the 16 bits become the top half of the float).
// Both backends call the same per-element functions, so their results are bit-identical.
#pragma once

#include <cstdint>

#include "kernels/bf16.h"
#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
// dst[n] = src[n] narrowed; dst and src do not overlap.
void convert(bf16* dst, const float* src, int64_t n);
// dst[n] = src[n] widened; dst and src do not overlap.
void convert(float* dst, const bf16* src, int64_t n);
}  // namespace cpu

namespace cuda {
void convert(const Context& ctx, bf16* dst, const float* src, int64_t n);
void convert(const Context& ctx, float* dst, const bf16* src, int64_t n);
}  // namespace cuda

inline void convert(const Context& ctx, bf16* dst, const float* src, int64_t n) {
  RECFORGE_CHECK(n >= 0, "convert: negative size ", n);
  dispatch(
      ctx, "convert", [&](const auto& on) { cuda::convert(on, dst, src, n); },
      [&] { cpu::convert(dst, src, n); });
}

inline void convert(const Context& ctx, float* dst, const bf16* src, int64_t n) {
  RECFORGE_CHECK(n >= 0, "convert: negative size ", n);
  dispatch(
      ctx, "convert", [&](const auto& on) { cuda::convert(on, dst, src, n); },
      [&] { cpu::convert(dst, src, n); });
}

}  // namespace recforge
