#include <omp.h>

#include <type_traits>
#include <vector>

#include "kernels/blas.h"
#include "kernels/convert.h"
#include "kernels/matmul.h"
#include "kernels/parallel.h"

namespace recforge::cpu {
namespace {

// ---- One storage type T (float, double): BLAS in T ------------------------------------------

// Each thread computes a slice of the output along its longer side: its rows when N ≥ OC, else its
// output columns, out[:, outs] = inp · weight[outs]ᵀ — so each thread packs only its share of the
// weight (a short prompt), and a matrix-vector product (decoding one token: N = 1) uses every core.
template <typename T>
void blas_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), threads = omp_get_num_threads();
    const bool by_rows = N >= OC;
    const Range rows = by_rows ? partition(N, t, threads) : Range{0, N};
    const Range outs = by_rows ? Range{0, OC} : partition(OC, t, threads);
    if (rows.size() > 0 && outs.size() > 0) {
      T* out_slice = out + rows.begin * OC + outs.begin;
      for (int64_t n = 0; n < rows.size(); ++n) {
        for (int64_t o = 0; o < outs.size(); ++o) {
          out_slice[n * OC + o] = bias ? bias[outs.begin + o] : T(0);
        }
      }
      gemm(Transpose::kNo, Transpose::kYes, static_cast<int>(rows.size()),
           static_cast<int>(outs.size()), C, T(1), inp + rows.begin * C, C, weight + outs.begin * C,
           C, T(1), out_slice, OC);
    }
  }
}

template <typename T>
void blas_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
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

// ---- bf16 operands: widened to float, the fp32 path, bf16 outputs rounded once ---------------

// An input of n elements as float: the array itself when it is float, else a widened copy (null
// stays null).
class FloatInput {
 public:
  FloatInput(const float* values, int64_t) : data_(values) {}
  FloatInput(const bf16* values, int64_t n) {
    if (values == nullptr) return;
    copy_.resize(n);
    convert(copy_.data(), values, n);
    data_ = copy_.data();
  }
  const float* data() const { return data_; }

 private:
  std::vector<float> copy_;
  const float* data_ = nullptr;
};

// An output of n elements computed in float: the array itself when it is float, else a float
// scratch that store() rounds into it (null stays null).
template <typename Out>
class FloatOutput {
 public:
  FloatOutput(Out* out, int64_t n) : out_(out), n_(n) {
    if constexpr (std::is_same_v<Out, float>) {
      data_ = out;
    } else if (out != nullptr) {
      scratch_.resize(n);
      data_ = scratch_.data();
    }
  }
  float* data() { return data_; }
  void store() {
    if constexpr (std::is_same_v<Out, bf16>) {
      if (out_ != nullptr) convert(out_, scratch_.data(), n_);
    }
  }

 private:
  Out* out_;
  int64_t n_;
  std::vector<float> scratch_;
  float* data_ = nullptr;
};

}  // namespace

template <typename Out, typename In>
void matmul_forward(Out* out, const In* inp, const In* weight, const Out* bias, int N, int C,
                    int OC) {
  if constexpr (!std::is_same_v<In, bf16>) {
    blas_forward(out, inp, weight, bias, N, C, OC);
  } else {
    if (N == 0) return;
    FloatInput inp_f(inp, int64_t{N} * C), weight_f(weight, int64_t{OC} * C), bias_f(bias, OC);
    FloatOutput<Out> out_f(out, int64_t{N} * OC);
    blas_forward(out_f.data(), inp_f.data(), weight_f.data(), bias_f.data(), N, C, OC);
    out_f.store();
  }
}

template <typename Dinp, typename T, typename In>
void matmul_backward(Dinp* dinp, T* dweight, T* dbias, const In* dout, const In* inp,
                     const In* weight, int N, int C, int OC) {
  if constexpr (!std::is_same_v<In, bf16>) {
    blas_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
  } else {
    if (N == 0) return;
    // Only the operands of the requested gradients are widened.
    FloatInput dout_f(dout, int64_t{N} * OC);
    FloatInput inp_f(dweight ? inp : nullptr, int64_t{N} * C);
    FloatInput weight_f(dinp ? weight : nullptr, int64_t{OC} * C);
    FloatOutput<Dinp> dinp_f(dinp, int64_t{N} * C);
    blas_backward(dinp_f.data(), dweight, dbias, dout_f.data(), inp_f.data(), weight_f.data(), N, C,
                  OC);
    dinp_f.store();
  }
}

template void matmul_forward<float, float>(float*, const float*, const float*, const float*, int,
                                           int, int);
template void matmul_forward<double, double>(double*, const double*, const double*, const double*,
                                             int, int, int);
template void matmul_forward<float, bf16>(float*, const bf16*, const bf16*, const float*, int, int,
                                          int);
template void matmul_forward<bf16, bf16>(bf16*, const bf16*, const bf16*, const bf16*, int, int,
                                         int);
template void matmul_backward<float, float, float>(float*, float*, float*, const float*,
                                                   const float*, const float*, int, int, int);
template void matmul_backward<double, double, double>(double*, double*, double*, const double*,
                                                      const double*, const double*, int, int, int);
template void matmul_backward<float, float, bf16>(float*, float*, float*, const bf16*, const bf16*,
                                                  const bf16*, int, int, int);
template void matmul_backward<bf16, float, bf16>(bf16*, float*, float*, const bf16*, const bf16*,
                                                 const bf16*, int, int, int);

}  // namespace recforge::cpu
