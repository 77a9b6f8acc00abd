#include <cmath>
#include <vector>

#include "kernels/cached_attention.h"
#include "kernels/cpu_math.h"

namespace recforge::cpu {
namespace {

// Query i of head h over the keys 0 .. last of its kv head: one pass, online softmax. Dot products
// and the accumulator are SIMD loops in T (lanes summed in a fixed order); the running max and sum
// are double.
template <typename T>
void attend_one(T* out, const T* q, const T* k_cache, const T* v_cache, int last, int kv_head,
                const CachedAttentionShape& shape, std::vector<T>& acc) {
  const int HS = shape.head_size;
  const int64_t kv_stride = static_cast<int64_t>(shape.num_kv_heads) * HS;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  double running_max = -INFINITY, sum = 0.0;
  std::fill(acc.begin(), acc.end(), T(0));
  for (int j = 0; j <= last; ++j) {
    const T* k = k_cache + j * kv_stride + static_cast<int64_t>(kv_head) * HS;
    const T* v = v_cache + j * kv_stride + static_cast<int64_t>(kv_head) * HS;
    const double score = scale * simd_dot(q, k, HS);
    const double new_max = std::max(running_max, score);
    const T rescale = static_cast<T>(std::exp(running_max - new_max));
    const T weight = static_cast<T>(std::exp(score - new_max));
    sum = sum * rescale + weight;
#pragma omp simd
    for (int d = 0; d < HS; ++d) acc[d] = acc[d] * rescale + weight * v[d];
    running_max = new_max;
  }
  for (int d = 0; d < HS; ++d) out[d] = static_cast<T>(acc[d] / sum);
}

}  // namespace

template <typename T>
void cached_attention_forward(T* out, const T* q, const T* k_cache, const T* v_cache, int start,
                              int n, const CachedAttentionShape& shape) {
  const int NH = shape.num_heads, HS = shape.head_size;
  const int group = NH / shape.num_kv_heads;
#pragma omp parallel
  {
    std::vector<T> acc(HS);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < static_cast<int64_t>(n) * NH; ++task) {
      const int i = static_cast<int>(task / NH), h = static_cast<int>(task % NH);
      const int64_t row = (static_cast<int64_t>(i) * NH + h) * HS;
      attend_one(out + row, q + row, k_cache, v_cache, start + i, h / group, shape, acc);
    }
  }
}

template void cached_attention_forward<float>(float*, const float*, const float*, const float*, int,
                                              int, const CachedAttentionShape&);
template void cached_attention_forward<double>(double*, const double*, const double*, const double*,
                                               int, int, const CachedAttentionShape&);

}  // namespace recforge::cpu
