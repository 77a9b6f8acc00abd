#include <omp.h>

#include "kernels/blas.h"
#include "kernels/lora.h"
#include "kernels/math.h"
#include "kernels/parallel.h"

namespace recforge::cpu {
namespace {

// out[i] = inp[i] · keep(i) / (1 − p) for the elements of `rows` (i = n·C + c, as a whole-tensor
// dropout_forward would number them).
template <typename T>
void dropout_rows(T* out, const T* inp, Range rows, int C, const DropoutParams& d) {
  for (int64_t i = rows.begin * C; i < rows.end * C; ++i) {
    out[i] = inp[i] * T(dropout_multiplier(d.p, d.seed, d.stream, i));
  }
}

// dinp[i] += masked[i] · keep(i) / (1 − p) for the elements of `rows`.
template <typename T>
void add_dropout_gradient_rows(T* dinp, const T* masked, Range rows, int C,
                               const DropoutParams& d) {
  for (int64_t i = rows.begin * C; i < rows.end * C; ++i) {
    dinp[i] += masked[i] * T(dropout_multiplier(d.p, d.seed, d.stream, i));
  }
}

}  // namespace

template <typename T>
void lora_forward(T* out, T* u, T* dropped, const T* inp, const T* weight, const T* bias,
                  const LoraWeights<T>& lora, int N, int C, int OC) {
  const int r = lora.rank;
  const T s = T(lora.scale);
  const bool drop = lora.dropout.p > 0.0f;
#pragma omp parallel
  {
    Range rows = partition(N, omp_get_thread_num(), omp_get_num_threads());
    const int M = static_cast<int>(rows.size());
    if (M > 0) {
      // The base layer exactly as matmul_forward computes it: out = bias, out += inp · Wᵀ.
      T* out_rows = out + rows.begin * OC;
      for (int64_t n = 0; n < M; ++n) {
        for (int o = 0; o < OC; ++o) out_rows[n * OC + o] = bias ? bias[o] : T(0);
      }
      gemm(Transpose::kNo, Transpose::kYes, M, OC, C, T(1), inp + rows.begin * C, C, weight, C,
           T(1), out_rows, OC);
      if (drop) dropout_rows(dropped, inp, rows, C, lora.dropout);
      const T* x = drop ? dropped : inp;
      T* u_rows = u + rows.begin * r;
      // u = drop(inp) · Aᵀ   [M, r]
      gemm(Transpose::kNo, Transpose::kYes, M, r, C, T(1), x + rows.begin * C, C, lora.a, C, T(0),
           u_rows, r);
      // out += s · u · Bᵀ    [M, OC]
      gemm(Transpose::kNo, Transpose::kYes, M, OC, r, s, u_rows, r, lora.b, r, T(1), out_rows, OC);
    }
  }
}

// Three phases separated by barriers: (1) per row slice du, drop(inp) and dinp's base term, per
// output slice dB; (2) per column slice dA, which needs du and drop(inp) of every row; (3) with
// dropout, per row slice the masked du · A term, computed in `dropped` once dA has read it.
template <typename T>
void lora_backward(T* dinp, T* dlora_a, T* dlora_b, T* du, T* dropped, const T* dout, const T* inp,
                   const T* u, const T* weight, const LoraWeights<T>& lora, int N, int C, int OC) {
  if (N == 0) return;
  const int r = lora.rank;
  const T s = T(lora.scale);
  const bool drop = lora.dropout.p > 0.0f;
  const T* x = drop ? dropped : inp;
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    const Range rows = partition(N, t, threads), outs = partition(OC, t, threads);
    const Range cols = partition(C, t, threads);
    const int M = static_cast<int>(rows.size());
    const T* dout_rows = dout + rows.begin * OC;
    if (M > 0) {
      // du = s · dout · B   [M, r]
      gemm(Transpose::kNo, Transpose::kNo, M, r, OC, s, dout_rows, OC, lora.b, r, T(0),
           du + rows.begin * r, r);
      if (drop) dropout_rows(dropped, inp, rows, C, lora.dropout);
      // dinp = dout · W   [M, C]
      gemm(Transpose::kNo, Transpose::kNo, M, C, OC, T(1), dout_rows, OC, weight, C, T(0),
           dinp + rows.begin * C, C);
      if (!drop) {  // dinp += du · A
        gemm(Transpose::kNo, Transpose::kNo, M, C, r, T(1), du + rows.begin * r, r, lora.a, C, T(1),
             dinp + rows.begin * C, C);
      }
    }
    if (outs.size() > 0) {  // dB[outs] += s · dout[:, outs]ᵀ · u
      gemm(Transpose::kYes, Transpose::kNo, static_cast<int>(outs.size()), r, N, s,
           dout + outs.begin, OC, u, r, T(1), dlora_b + outs.begin * r, r);
    }
#pragma omp barrier
    if (cols.size() > 0) {  // dA[:, cols] += duᵀ · drop(inp)[:, cols]
      gemm(Transpose::kYes, Transpose::kNo, r, static_cast<int>(cols.size()), N, T(1), du, r,
           x + cols.begin, C, T(1), dlora_a + cols.begin, C);
    }
    if (drop) {
#pragma omp barrier
      if (M > 0) {  // dinp += drop'(du · A), du · A staged in `dropped`
        gemm(Transpose::kNo, Transpose::kNo, M, C, r, T(1), du + rows.begin * r, r, lora.a, C, T(0),
             dropped + rows.begin * C, C);
        add_dropout_gradient_rows(dinp, dropped, rows, C, lora.dropout);
      }
    }
  }
}

template void lora_forward<float>(float*, float*, float*, const float*, const float*, const float*,
                                  const LoraWeights<float>&, int, int, int);
template void lora_forward<double>(double*, double*, double*, const double*, const double*,
                                   const double*, const LoraWeights<double>&, int, int, int);
template void lora_backward<float>(float*, float*, float*, float*, float*, const float*,
                                   const float*, const float*, const float*,
                                   const LoraWeights<float>&, int, int, int);
template void lora_backward<double>(double*, double*, double*, double*, double*, const double*,
                                    const double*, const double*, const double*,
                                    const LoraWeights<double>&, int, int, int);

}  // namespace recforge::cpu
