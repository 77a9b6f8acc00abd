#include <omp.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/layernorm.h"
#include "kernels/parallel.h"

namespace recforge::cpu {
namespace {

// Normalizes one row; statistics accumulate in double for float inputs too (C is small).
template <typename Out, typename T>
void normalize_row(Out* out, T* mean_out, T* rstd_out, const T* x, const T* weight, const T* bias,
                   int C) {
  double sum = 0.0;
  for (int c = 0; c < C; ++c) sum += x[c];
  double mean = sum / C;
  double sq = 0.0;
  for (int c = 0; c < C; ++c) sq += (x[c] - mean) * (x[c] - mean);
  double rstd = 1.0 / std::sqrt(sq / C + kLayerNormEps);
  for (int c = 0; c < C; ++c) {
    out[c] = store_as<Out>(T((x[c] - mean) * rstd) * weight[c] + bias[c]);
  }
  *mean_out = T(mean);
  *rstd_out = T(rstd);
}

}  // namespace

template <typename Out, typename T>
void layernorm_forward(Out* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    int64_t row = static_cast<int64_t>(n) * C;
    normalize_row(out + row, mean + n, rstd + n, inp + row, weight, bias, C);
  }
}

template <typename Out, typename T>
void residual_layernorm_forward(T* residual, Out* out, T* mean, T* rstd, const T* a, const T* b,
                                const T* weight, const T* bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    int64_t row = static_cast<int64_t>(n) * C;
    for (int c = 0; c < C; ++c) residual[row + c] = a[row + c] + b[row + c];
    normalize_row(out + row, mean + n, rstd + n, residual + row, weight, bias, C);
  }
}

template <typename T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int N, int C) {
  // Each thread sums dweight/dbias over a fixed, contiguous range of rows into its own partial; the
  // partials are then added in thread order, so the result does not depend on scheduling.
  int threads = omp_get_max_threads();
  std::vector<T> partials(static_cast<size_t>(threads) * 2 * C, T(0));
#pragma omp parallel num_threads(threads)
  {
    int t = omp_get_thread_num(), team = omp_get_num_threads();
    T* dweight_partial = partials.data() + static_cast<size_t>(t) * 2 * C;
    T* dbias_partial = dweight_partial + C;
    Range rows = partition(N, t, team);
    for (int64_t n = rows.begin; n < rows.end; ++n) {
      int64_t row = static_cast<int64_t>(n) * C;
      const T* x = inp + row;
      const T* g_out = dout + row;
      T mu = mean[n], rs = rstd[n];
      double g_mean = 0.0, gx_mean = 0.0;
      for (int c = 0; c < C; ++c) {
        T xhat = (x[c] - mu) * rs;
        T g = g_out[c] * weight[c];
        g_mean += g;
        gx_mean += g * xhat;
        dweight_partial[c] += g_out[c] * xhat;
        dbias_partial[c] += g_out[c];
      }
      g_mean /= C;
      gx_mean /= C;
      for (int c = 0; c < C; ++c) {
        T xhat = (x[c] - mu) * rs;
        T g = g_out[c] * weight[c];
        dinp[row + c] += rs * (g - T(g_mean) - xhat * T(gx_mean));
      }
    }
  }
  for (int t = 0; t < threads; ++t) {
    const T* dweight_partial = partials.data() + static_cast<size_t>(t) * 2 * C;
    for (int c = 0; c < C; ++c) {
      if (dweight) dweight[c] += dweight_partial[c];
      if (dbias) dbias[c] += dweight_partial[C + c];
    }
  }
}

#define RECFORGE_INSTANTIATE_FORWARD(Out, T)                                                       \
  template void layernorm_forward<Out, T>(Out*, T*, T*, const T*, const T*, const T*, int, int);   \
  template void residual_layernorm_forward<Out, T>(T*, Out*, T*, T*, const T*, const T*, const T*, \
                                                   const T*, int, int);
RECFORGE_INSTANTIATE_FORWARD(float, float)
RECFORGE_INSTANTIATE_FORWARD(double, double)
RECFORGE_INSTANTIATE_FORWARD(bf16, float)
#undef RECFORGE_INSTANTIATE_FORWARD

template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int);

}  // namespace recforge::cpu
