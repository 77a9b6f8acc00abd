// RMS normalization on the CPU: one row per iteration, statistics in double; dweight summed in
// per-thread partials added in thread order (deterministic).
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/rmsnorm.h"

namespace recforge::cpu {
namespace {

// Normalizes one row; the mean of squares accumulates in double for float inputs too.
template <typename T>
void normalize_row(T* out, T* rstd_out, const T* x, const T* weight, int C, float eps) {
  double squares = 0.0;
  for (int c = 0; c < C; ++c) squares += static_cast<double>(x[c]) * x[c];
  const double rstd = 1.0 / std::sqrt(squares / C + static_cast<double>(eps));
  for (int c = 0; c < C; ++c) out[c] = T(x[c] * rstd) * weight[c];
  *rstd_out = T(rstd);
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const int64_t row = static_cast<int64_t>(n) * C;
    normalize_row(out + row, rstd + n, inp + row, weight, C, eps);
  }
}

template <typename T>
void residual_rmsnorm_forward(T* residual, T* out, T* rstd, const T* a, const T* b, const T* weight,
                              int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const int64_t row = static_cast<int64_t>(n) * C;
    for (int c = 0; c < C; ++c) residual[row + c] = a[row + c] + b[row + c];
    normalize_row(out + row, rstd + n, residual + row, weight, C, eps);
  }
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                      const T* rstd, int N, int C) {
  // Each thread sums dweight over a fixed, contiguous range of rows (split by the team it gets)
  // into its own partial; the partials are then added in thread order, so the result does not
  // depend on scheduling.
  const int threads = omp_get_max_threads();
  std::vector<T> partials(static_cast<size_t>(threads) * C, T(0));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    T* dweight_partial = partials.data() + static_cast<size_t>(t) * C;
    const Range rows = partition(N, t, team);
    for (int64_t n = rows.begin; n < rows.end; ++n) {
      const int64_t row = n * C;
      const T* x = inp + row;
      const T* g_out = dout + row;
      const T rs = rstd[n];
      double gx_mean = 0.0;
      for (int c = 0; c < C; ++c) {
        const T xhat = x[c] * rs;
        gx_mean += g_out[c] * weight[c] * xhat;
        dweight_partial[c] += g_out[c] * xhat;
      }
      gx_mean /= C;
      for (int c = 0; c < C; ++c) {
        const T xhat = x[c] * rs;
        dinp[row + c] += rs * (g_out[c] * weight[c] - xhat * T(gx_mean));
      }
    }
  }
  if (dweight == nullptr) return;
  for (int t = 0; t < threads; ++t) {  // partials of threads the team lacked stay 0
    const T* dweight_partial = partials.data() + static_cast<size_t>(t) * C;
    for (int c = 0; c < C; ++c) dweight[c] += dweight_partial[c];
  }
}

#define RECFORGE_INSTANTIATE(T)                                                                 \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int, int, float);                \
  template void residual_rmsnorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, \
                                            float);                                             \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int, int);
RECFORGE_INSTANTIATE(float)
RECFORGE_INSTANTIATE(double)
#undef RECFORGE_INSTANTIATE

}  // namespace recforge::cpu
