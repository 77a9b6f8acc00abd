// Rotary position embeddings on the GPU: one grid-stride loop over the N · H · R/2 rotated pairs,
// each thread computing its pair's inverse frequency, angle, cos and sin and rotating the pair in
// place (rope_inv_freq, rope_cos_sin and rope_rotate_pair from kernels/math.h, shared with the CPU
// backend). Channels R .. HS − 1 are not touched. The backward is the same loop rotating by −θ.

#include "kernels/cuda_common.cuh"
#include "kernels/rope.h"

namespace recforge::cuda {
namespace {

// sign = +1 rotates by θ (forward), −1 by −θ (backward). Pair p = ((n · H) + h) · R/2 + i holds
// channels i and i + R/2 of head h of token n.
__global__ void rope_kernel(float* x, const int32_t* positions, int64_t pairs, int H, int HS,
                            int rotary_dim, float base, float sign) {
  const int half = rotary_dim / 2;
  for (int64_t p = grid_stride_begin(); p < pairs; p += grid_stride_step()) {
    const int i = static_cast<int>(p % half);
    const int64_t head = p / half;  // n · H + h
    const int64_t n = head / H;
    float cos_theta, sin_theta;
    rope_cos_sin(positions[n], rope_inv_freq(i, rotary_dim, base), &cos_theta, &sin_theta);
    float* pair = x + head * HS + i;
    rope_rotate_pair(pair, pair + half, cos_theta, sign * sin_theta);
  }
}

void launch(const Context& ctx, float* x, const int32_t* positions, int N, const RopeShape& shape,
            float sign) {
  const int64_t pairs = static_cast<int64_t>(N) * shape.num_heads * (shape.rotary_dim / 2);
  if (pairs == 0) return;
  rope_kernel<<<grid_stride_blocks(ctx, pairs), kElementwiseThreads, 0, stream_of(ctx)>>>(
      x, positions, pairs, shape.num_heads, shape.head_size, shape.rotary_dim, shape.base, sign);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_forward(const Context& ctx, float* x, const int32_t* positions, int N,
                  const RopeShape& shape) {
  launch(ctx, x, positions, N, shape, 1.0f);
}

void rope_backward(const Context& ctx, float* dx, const int32_t* positions, int N,
                   const RopeShape& shape) {
  launch(ctx, dx, positions, N, shape, -1.0f);
}

}  // namespace recforge::cuda
