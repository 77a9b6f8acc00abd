// Rows of a packed [N, C] array picked by index, and written back: DPO reads the hidden state at
// each prompt's last position and returns ∂L/∂hidden to those positions, and picks each pair's
// candidates out of the stage's candidate matrix, without a round trip through the host.
//
//   gather_rows:  out[i, :] = in[rows[i], :]                         out [R, C], in [N, C]
//   scatter_rows: out[rows[i], :] = in[i, :], every other row zero   out [N, C], in [R, C]
//
// rows [R] are indices into [0, N) on the context's device; scatter_rows needs them distinct.
// Element types: float and int32_t on both backends (double on the CPU).
#pragma once

#include <cstdint>

#include "kernels/check.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
template <typename T>
void gather_rows(T* out, const T* in, const int32_t* rows, int R, int C);
template <typename T>
void scatter_rows(T* out, const T* in, const int32_t* rows, int R, int N, int C);
}  // namespace cpu

namespace cuda {
template <typename T>
void gather_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int C);
template <typename T>
void scatter_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int N,
                  int C);
}  // namespace cuda

template <typename T>
inline constexpr bool kRowsOnCuda = std::is_same_v<T, float> || std::is_same_v<T, int32_t>;

template <typename T>
void gather_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int C) {
  RECFORGE_CHECK(R >= 0 && C > 0, "gather_rows: bad shape R=", R, " C=", C);
  dispatch<kRowsOnCuda<T>>(
      ctx, "gather_rows", [&](const auto& on) { cuda::gather_rows(on, out, in, rows, R, C); },
      [&] { cpu::gather_rows(out, in, rows, R, C); });
}

template <typename T>
void scatter_rows(const Context& ctx, T* out, const T* in, const int32_t* rows, int R, int N,
                  int C) {
  RECFORGE_CHECK(R >= 0 && R <= N && C > 0, "scatter_rows: bad shape R=", R, " N=", N, " C=", C);
  dispatch<kRowsOnCuda<T>>(
      ctx, "scatter_rows", [&](const auto& on) { cuda::scatter_rows(on, out, in, rows, R, N, C); },
      [&] { cpu::scatter_rows(out, in, rows, R, N, C); });
}

}  // namespace recforge
