// Rotary position embeddings (Su et al. 2021) in the Hugging Face / GPT-NeoX layout ("rotate
// half"), in place over x [N, H, HS] (H heads of HS channels per token):
//   for each token n at position p = positions[n], each head, and i < R/2 (R = rotary_dim ≤ HS,
//   even):  θ_i = p · inv_freq_i,  inv_freq_i = base^(−2i/R)  (computed in fp32, as
//   transformers does),
//   (x_i, x_{i+R/2}) ← (x_i cos θ_i − x_{i+R/2} sin θ_i,  x_{i+R/2} cos θ_i + x_i sin θ_i);
//   channels R .. HS − 1 pass through.
// The backward applies the inverse rotation (by −θ) to the gradient in place. The angle's cos and
// sin come from rope_cos_sin (kernels/math.h), shared by both backends. llama.cpp's GGUF files
// store q and k permuted for its interleaved rotation; the model readers undo that, so this one
// layout serves both.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

struct RopeShape {
  int num_heads = 0;   // H
  int head_size = 0;   // HS
  int rotary_dim = 0;  // R, even, ≤ HS
  float base = 10000.0f;
};

namespace cpu {
template <typename T>
void rope_forward(T* x, const int32_t* positions, int N, const RopeShape& shape);
template <typename T>
void rope_backward(T* dx, const int32_t* positions, int N, const RopeShape& shape);
}  // namespace cpu

namespace cuda {
void rope_forward(const Context& ctx, float* x, const int32_t* positions, int N,
                  const RopeShape& shape);
void rope_backward(const Context& ctx, float* dx, const int32_t* positions, int N,
                   const RopeShape& shape);
}  // namespace cuda

inline void check_rope_shape(const char* op, int N, const RopeShape& s) {
  RECFORGE_CHECK(N >= 0 && s.num_heads > 0 && s.head_size > 0 && s.rotary_dim > 0 &&
                     s.rotary_dim % 2 == 0 && s.rotary_dim <= s.head_size && s.base > 0.0f,
                 op, ": bad shape N=", N, " heads=", s.num_heads, " head_size=", s.head_size,
                 " rotary_dim=", s.rotary_dim, " base=", s.base);
}

template <typename T>
void rope_forward(const Context& ctx, T* x, const int32_t* positions, int N,
                  const RopeShape& shape) {
  check_rope_shape("rope_forward", N, shape);
  dispatch<std::is_same_v<T, float>>(
      ctx, "rope_forward", [&](const auto& on) { cuda::rope_forward(on, x, positions, N, shape); },
      [&] { cpu::rope_forward(x, positions, N, shape); });
}

template <typename T>
void rope_backward(const Context& ctx, T* dx, const int32_t* positions, int N,
                   const RopeShape& shape) {
  check_rope_shape("rope_backward", N, shape);
  dispatch<std::is_same_v<T, float>>(
      ctx, "rope_backward",
      [&](const auto& on) { cuda::rope_backward(on, dx, positions, N, shape); },
      [&] { cpu::rope_backward(dx, positions, N, shape); });
}

}  // namespace recforge
