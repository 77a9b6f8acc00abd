// Cached attention on the GPU: one warp per (new token, query head). Lane t holds channels
// t, t + 32, ... of the query and of the output accumulator in registers (HS / 32 each); the warp
// walks the keys 0 .. start + i in order, forms each score with a butterfly sum (every lane gets
// it) and updates the running max, sum and accumulator (online softmax). No shared memory; the
// fixed key order and reduction tree make the result deterministic.

#include "kernels/cached_attention.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

template <int kHeadSize>
__global__ void cached_attention_kernel(float* out, const float* q, const float* k_cache,
                                        const float* v_cache, int start, int n, int NH, int KV) {
  constexpr int kPerLane = kHeadSize / kWarpSize;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (task >= static_cast<int64_t>(n) * NH) return;
  const int lane = threadIdx.x % kWarpSize;
  const int i = static_cast<int>(task / NH), h = static_cast<int>(task % NH);
  const int kv_head = h / (NH / KV);
  const float scale = rsqrtf(static_cast<float>(kHeadSize));
  float q_reg[kPerLane], acc[kPerLane];
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    q_reg[r] = q[task * kHeadSize + lane + r * kWarpSize] * scale;
    acc[r] = 0.0f;
  }
  float running_max = -INFINITY, sum = 0.0f;
  const int64_t kv_stride = static_cast<int64_t>(KV) * kHeadSize;
  for (int j = 0; j <= start + i; ++j) {
    const float* k = k_cache + j * kv_stride + static_cast<int64_t>(kv_head) * kHeadSize;
    const float* v = v_cache + j * kv_stride + static_cast<int64_t>(kv_head) * kHeadSize;
    float partial = 0.0f;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) partial += q_reg[r] * k[lane + r * kWarpSize];
    const float score = warp_reduce(partial, Sum{});
    const float new_max = fmaxf(running_max, score);
    const float rescale = __expf(running_max - new_max), weight = __expf(score - new_max);
    sum = sum * rescale + weight;
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) acc[r] = acc[r] * rescale + weight * v[lane + r * kWarpSize];
    running_max = new_max;
  }
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) out[task * kHeadSize + lane + r * kWarpSize] = acc[r] / sum;
}

template <int kHeadSize>
void launch(const Context& ctx, float* out, const float* q, const float* k_cache,
            const float* v_cache, int start, int n, const CachedAttentionShape& shape) {
  const int64_t tasks = static_cast<int64_t>(n) * shape.num_heads;
  cached_attention_kernel<kHeadSize>
      <<<ceil_div(tasks, kWarpsPerBlock), kWarpsPerBlock * kWarpSize, 0, stream_of(ctx)>>>(
          out, q, k_cache, v_cache, start, n, shape.num_heads, shape.num_kv_heads);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void cached_attention_forward(const Context& ctx, float* out, const float* q, const float* k_cache,
                              const float* v_cache, int start, int n,
                              const CachedAttentionShape& shape) {
  if (n == 0) return;
  switch (shape.head_size) {
    case 32:
      return launch<32>(ctx, out, q, k_cache, v_cache, start, n, shape);
    case 64:
      return launch<64>(ctx, out, q, k_cache, v_cache, start, n, shape);
    default:
      return launch<128>(ctx, out, q, k_cache, v_cache, start, n, shape);
  }
}

}  // namespace recforge::cuda
