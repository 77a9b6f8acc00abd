// Column blocks of row-major [N, ·] arrays joined and split: the Llama block's separate q, k and v
// projections packed into the [N, H + 2·KV, HS] rows attention reads, and the attention gradient
// split back.
//   concat_columns: out[n, :] = [parts[0][n, :] | parts[1][n, :] | ...]   out [N, Σ widths]
//   split_columns:  parts[k][n, :] = the k-th block of in[n, :]           (overwritten)
// Up to kMaxColumnParts blocks; widths > 0.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

inline constexpr int kMaxColumnParts = 4;

template <typename T>
struct ColumnParts {
  std::array<T*, kMaxColumnParts> data{};  // [N, widths[k]] each, on the kernel's device
  std::array<int, kMaxColumnParts> widths{};
  int count = 0;

  int total_width() const {
    int total = 0;
    for (int k = 0; k < count; ++k) total += widths[k];
    return total;
  }
};

namespace cpu {
template <typename T>
void concat_columns(T* out, const ColumnParts<const T>& parts, int N);
template <typename T>
void split_columns(const ColumnParts<T>& parts, const T* in, int N);
}  // namespace cpu

namespace cuda {
void concat_columns(const Context& ctx, float* out, const ColumnParts<const float>& parts, int N);
void split_columns(const Context& ctx, const ColumnParts<float>& parts, const float* in, int N);
}  // namespace cuda

template <typename T>
void check_column_parts(const char* op, const ColumnParts<T>& parts, int N) {
  RECFORGE_CHECK(N >= 0 && parts.count >= 1 && parts.count <= kMaxColumnParts, op,
                 ": bad shape N=", N, " parts=", parts.count);
  for (int k = 0; k < parts.count; ++k) {
    RECFORGE_CHECK(parts.widths[k] > 0, op, ": part ", k, " has width ", parts.widths[k]);
  }
}

template <typename T>
void concat_columns(const Context& ctx, T* out, const ColumnParts<const T>& parts, int N) {
  check_column_parts("concat_columns", parts, N);
  dispatch<std::is_same_v<T, float>>(
      ctx, "concat_columns", [&](const auto& on) { cuda::concat_columns(on, out, parts, N); },
      [&] { cpu::concat_columns(out, parts, N); });
}

template <typename T>
void split_columns(const Context& ctx, const ColumnParts<T>& parts, const T* in, int N) {
  check_column_parts("split_columns", parts, N);
  dispatch<std::is_same_v<T, float>>(
      ctx, "split_columns", [&](const auto& on) { cuda::split_columns(on, parts, in, N); },
      [&] { cpu::split_columns(parts, in, N); });
}

}  // namespace recforge
