// Token plus learned-position embedding over a packed batch of N tokens.
//
// The backward scatters N gradient rows into the tables. To make it deterministic on every device,
// the rows are grouped by key once on the host (a stable counting sort, `ScatterIndex`): each table
// row is then the sum of its gradient rows in ascending row order, computed by one owner, with no
// atomics.
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

// Rows of a packed batch grouped by key (token id or position). Group g has key keys[g] and rows
// rows[starts[g] .. starts[g+1]), ascending. Pointers live on the device that runs the kernel.
struct ScatterIndex {
  const int32_t* keys = nullptr;    // [num_groups]
  const int32_t* starts = nullptr;  // [num_groups + 1]
  const int32_t* rows = nullptr;    // [N]
  int num_groups = 0;
};

// Host-side storage for a ScatterIndex; build_scatter_index sorts `keys` (values in [0,
// key_limit)).
struct ScatterIndexHost {
  std::vector<int32_t> keys, starts, rows;
  ScatterIndex view() const {
    return {keys.data(), starts.data(), rows.data(), static_cast<int>(keys.size())};
  }
};
ScatterIndexHost build_scatter_index(std::span<const int32_t> keys, int key_limit);

namespace cpu {
// out[n, :] = wte[tokens[n], :] + wpe[positions[n], :]     out [N, C], wte [V, C], wpe [P, C]
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* positions, const T* wte,
                       const T* wpe, int N, int C);
// dwte[k, :] += Σ_{n: tokens[n] = k} dout[n, :], likewise dwpe over positions. Either table's
// gradient may be null (frozen). dout [N, C].
template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const ScatterIndex& token_index,
                        const ScatterIndex& position_index, int C);
}  // namespace cpu

namespace cuda {
void embedding_forward(const Context& ctx, float* out, const int32_t* tokens,
                       const int32_t* positions, const float* wte, const float* wpe, int N, int C);
void embedding_backward(const Context& ctx, float* dwte, float* dwpe, const float* dout,
                        const ScatterIndex& token_index, const ScatterIndex& position_index, int C);
}  // namespace cuda

template <typename T>
void embedding_forward(const Context& ctx, T* out, const int32_t* tokens, const int32_t* positions,
                       const T* wte, const T* wpe, int N, int C) {
  RECFORGE_CHECK(N >= 0 && C > 0, "embedding_forward: bad shape N=", N, " C=", C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "embedding_forward",
      [&](const auto& on) { cuda::embedding_forward(on, out, tokens, positions, wte, wpe, N, C); },
      [&] { cpu::embedding_forward(out, tokens, positions, wte, wpe, N, C); });
}

template <typename T>
void embedding_backward(const Context& ctx, T* dwte, T* dwpe, const T* dout,
                        const ScatterIndex& token_index, const ScatterIndex& position_index,
                        int C) {
  RECFORGE_CHECK(C > 0, "embedding_backward: bad channel count ", C);
  dispatch<std::is_same_v<T, float>>(
      ctx, "embedding_backward",
      [&](const auto& on) {
        cuda::embedding_backward(on, dwte, dwpe, dout, token_index, position_index, C);
      },
      [&] { cpu::embedding_backward(dwte, dwpe, dout, token_index, position_index, C); });
}

}  // namespace recforge
