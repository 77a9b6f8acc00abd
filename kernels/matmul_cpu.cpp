#include <omp.h>

#include <vector>

#include "kernels/blas.h"
#include "kernels/matmul.h"
#include "kernels/parallel.h"

namespace recforge::cpu {

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
#pragma omp parallel
  {
    Range rows = partition(N, omp_get_thread_num(), omp_get_num_threads());
    if (rows.size() > 0) {
      T* out_rows = out + rows.begin * OC;
      for (int64_t n = 0; n < rows.size(); ++n) {
        for (int o = 0; o < OC; ++o) out_rows[n * OC + o] = bias ? bias[o] : T(0);
      }
      gemm(Transpose::kNo, Transpose::kYes, static_cast<int>(rows.size()), OC, C, T(1),
           inp + rows.begin * C, C, weight, C, T(1), out_rows, OC);
    }
  }
}

template <typename T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC) {
  if (N == 0) return;
#pragma omp parallel
  {
    int t = omp_get_thread_num(), threads = omp_get_num_threads();
    Range rows = partition(N, t, threads);
    if (dinp && rows.size() > 0) {  // dinp[rows] = dout[rows] · weight
      gemm(Transpose::kNo, Transpose::kNo, static_cast<int>(rows.size()), C, OC, T(1),
           dout + rows.begin * OC, OC, weight, C, T(0), dinp + rows.begin * C, C);
    }
    Range outs = partition(OC, t, threads);
    if (dweight && outs.size() > 0) {  // dweight[outs] += dout[:, outs]ᵀ · inp
      gemm(Transpose::kYes, Transpose::kNo, static_cast<int>(outs.size()), C, N, T(1),
           dout + outs.begin, OC, inp, C, T(1), dweight + outs.begin * C, C);
    }
    if (dbias && outs.size() > 0) {  // dbias[outs] += Σ_n dout[n, outs], rows in order
      std::vector<T> sums(outs.size(), T(0));
      for (int64_t n = 0; n < N; ++n) {
        const T* dout_row = dout + n * OC + outs.begin;
        for (int64_t o = 0; o < outs.size(); ++o) sums[o] += dout_row[o];
      }
      for (int64_t o = 0; o < outs.size(); ++o) dbias[outs.begin + o] += sums[o];
    }
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int,
                                    int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace recforge::cpu
