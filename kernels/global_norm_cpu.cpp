#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/global_norm.h"
#include "kernels/parallel.h"

namespace recforge {

namespace cpu {

double sum_of_squares(const float* x, int64_t n) {
  int threads = omp_get_max_threads();
  std::vector<double> partials(threads, 0.0);
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num();
    Range range = partition(n, t, omp_get_num_threads());
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = range.begin; i < range.end; ++i) sum += static_cast<double>(x[i]) * x[i];
    partials[t] = sum;
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  return total;
}

void scale(float* x, int64_t n, float factor) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

}  // namespace cpu

double sum_of_squares(const Context& ctx, const float* x, int64_t n) {
  return dispatch(
      ctx, "sum_of_squares", [&](const auto& on) { return cuda::sum_of_squares(on, x, n); },
      [&] { return cpu::sum_of_squares(x, n); });
}

float global_norm(const Context& ctx, const float* grads, int64_t n) {
  return static_cast<float>(std::sqrt(sum_of_squares(ctx, grads, n)));
}

void scale(const Context& ctx, float* x, int64_t n, float factor) {
  dispatch(
      ctx, "scale", [&](const auto& on) { cuda::scale(on, x, n, factor); },
      [&] { cpu::scale(x, n, factor); });
}

float clip_factor(float norm, float max_norm) {
  if (max_norm <= 0.0f || !(norm > max_norm)) return 1.0f;
  return max_norm / (norm + 1e-6f);
}

float clip_gradients(const Context& ctx, float* grads, int64_t n, float max_norm) {
  float norm = global_norm(ctx, grads, n);
  float factor = clip_factor(norm, max_norm);
  if (factor != 1.0f) scale(ctx, grads, n, factor);
  return norm;
}

}  // namespace recforge
