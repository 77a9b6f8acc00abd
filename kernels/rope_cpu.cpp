// Rotary position embeddings on the CPU: per token, the angles' cos and sin once, then every head's
// pairs rotated in place.
#include <vector>

#include "kernels/math.h"
#include "kernels/rope.h"

namespace recforge::cpu {
namespace {

// Rotates every head of every token by its position's angles: by θ (sign = +1, the forward) or by
// −θ (sign = −1, the backward). The R/2 inverse frequencies are computed once per call.
template <typename T>
void rotate(T* x, const int32_t* positions, int N, const RopeShape& shape, T sign) {
  const int H = shape.num_heads, HS = shape.head_size, half = shape.rotary_dim / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = rope_inv_freq(i, shape.rotary_dim, shape.base);
#pragma omp parallel
  {
    std::vector<T> cos_theta(half), sin_theta(half);
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      for (int i = 0; i < half; ++i) {
        rope_cos_sin(positions[n], inv_freq[i], &cos_theta[i], &sin_theta[i]);
      }
      T* token = x + static_cast<int64_t>(n) * H * HS;
      for (int h = 0; h < H; ++h) {
        T* head = token + static_cast<int64_t>(h) * HS;
        for (int i = 0; i < half; ++i) {
          rope_rotate_pair(head + i, head + i + half, cos_theta[i], sign * sin_theta[i]);
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* x, const int32_t* positions, int N, const RopeShape& shape) {
  rotate(x, positions, N, shape, T(1));
}

template <typename T>
void rope_backward(T* dx, const int32_t* positions, int N, const RopeShape& shape) {
  rotate(dx, positions, N, shape, T(-1));
}

template void rope_forward<float>(float*, const int32_t*, int, const RopeShape&);
template void rope_forward<double>(double*, const int32_t*, int, const RopeShape&);
template void rope_backward<float>(float*, const int32_t*, int, const RopeShape&);
template void rope_backward<double>(double*, const int32_t*, int, const RopeShape&);

}  // namespace recforge::cpu
