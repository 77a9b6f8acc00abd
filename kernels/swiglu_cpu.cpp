// SwiGLU on the CPU: the element math of kernels/math.h over the n elements.
#include "kernels/math.h"
#include "kernels/swiglu.h"

namespace recforge::cpu {

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = swiglu(gate[i], up[i]);
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T dg, du;
    swiglu_grad(gate[i], up[i], dout[i], &dg, &du);
    dgate[i] = dg;
    dup[i] = du;
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t);

}  // namespace recforge::cpu
