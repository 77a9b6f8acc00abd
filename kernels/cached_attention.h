// Causal attention of n new tokens of one sequence against its key/value cache: generation (prefill
// the prompt, then one token per step) without recomputing the past.
//
// Layout (row-major):
//   q        [n, NH, HS]           the new tokens' queries, at positions start .. start + n − 1
//   k_cache  [start + n, KV, HS]   every key of the sequence so far, the new tokens' included
//   v_cache  [start + n, KV, HS]
//   out      [n, NH, HS]           softmax(q·kᵀ/√HS)·v, query i over the keys 0 .. start + i
// Query head h reads kv head h / (NH / KV), as in kernels/attention.h.
//
// CPU: one task per (new token, head); one pass with a running max and sum (online softmax, in
// double) over SIMD dot products and a SIMD accumulator, so no score row is stored. CUDA: one warp
// per (new token, head); each lane holds HS / 32 channels of q and of the output accumulator in
// registers and the warp streams over the keys, reducing each dot product with shuffles.
#pragma once

#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

struct CachedAttentionShape {
  int num_heads = 0;     // NH
  int num_kv_heads = 0;  // KV, divides NH
  int head_size = 0;     // HS ∈ {32, 64, 128}
};

namespace cpu {
template <typename T>
void cached_attention_forward(T* out, const T* q, const T* k_cache, const T* v_cache, int start,
                              int n, const CachedAttentionShape& shape);
}  // namespace cpu

namespace cuda {
void cached_attention_forward(const Context& ctx, float* out, const float* q, const float* k_cache,
                              const float* v_cache, int start, int n,
                              const CachedAttentionShape& shape);
}  // namespace cuda

inline void check_cached_attention(int start, int n, const CachedAttentionShape& s) {
  RECFORGE_CHECK(start >= 0 && n >= 0 && s.num_heads > 0 && s.num_kv_heads > 0 &&
                     s.num_heads % s.num_kv_heads == 0 &&
                     (s.head_size == 32 || s.head_size == 64 || s.head_size == 128),
                 "cached_attention_forward: bad shape start=", start, " n=", n,
                 " heads=", s.num_heads, " kv_heads=", s.num_kv_heads, " head_size=", s.head_size);
}

template <typename T>
void cached_attention_forward(const Context& ctx, T* out, const T* q, const T* k_cache,
                              const T* v_cache, int start, int n,
                              const CachedAttentionShape& shape) {
  check_cached_attention(start, n, shape);
  dispatch<std::is_same_v<T, float>>(
      ctx, "cached_attention_forward",
      [&](const auto& on) {
        cuda::cached_attention_forward(on, out, q, k_cache, v_cache, start, n, shape);
      },
      [&] { cpu::cached_attention_forward(out, q, k_cache, v_cache, start, n, shape); });
}

}  // namespace recforge
