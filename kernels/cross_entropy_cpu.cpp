#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu_math.h"
#include "kernels/cross_entropy.h"

namespace recforge {

int64_t count_targets(std::span<const int32_t> targets, int32_t ignore_index) {
  return std::count_if(targets.begin(), targets.end(),
                       [ignore_index](int32_t t) { return t != ignore_index; });
}

namespace cpu {

template <typename T>
void softmax_cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N,
                           int V, T loss_scale, int32_t ignore_index) {
  for (int n = 0; n < N; ++n) {  // checked before the parallel region: it cannot throw
    RECFORGE_CHECK(targets[n] == ignore_index || (targets[n] >= 0 && targets[n] < V),
                   "softmax_cross_entropy: target ", targets[n], " of row ", n, " is outside [0, ",
                   V, ")");
  }
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* row = logits + static_cast<int64_t>(n) * V;
    T* grad = dlogits ? dlogits + static_cast<int64_t>(n) * V : nullptr;
    int32_t target = targets[n];
    if (target == ignore_index) {
      losses[n] = 0;
      if (grad) std::fill(grad, grad + V, T(0));
      continue;
    }
    T max = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : max)
    for (int v = 0; v < V; ++v) max = std::max(max, row[v]);
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; ++v) sum += vexp(row[v] - max);
    T log_sum = std::log(sum);
    T target_logit = row[target];
    losses[n] = log_sum + max - target_logit;
    if (grad) {
      T lse = max + log_sum;
#pragma omp simd
      for (int v = 0; v < V; ++v) grad[v] = vexp(row[v] - lse) * loss_scale;
      grad[target] -= loss_scale;
    }
  }
}

template void softmax_cross_entropy<float>(float*, float*, const float*, const int32_t*, int, int,
                                           float, int32_t);
template void softmax_cross_entropy<double>(double*, double*, const double*, const int32_t*, int,
                                            int, double, int32_t);

}  // namespace cpu
}  // namespace recforge
