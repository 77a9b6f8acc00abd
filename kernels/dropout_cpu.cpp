#include "kernels/dropout.h"
#include "kernels/math.h"

namespace recforge {

void validate_dropout(const DropoutParams& params) {
  RECFORGE_CHECK(params.p >= 0.0f && params.p < 1.0f, "dropout probability must be in [0, 1), got ",
                 params.p);
}

namespace cpu {

template <typename T>
void dropout_forward(T* out, const T* inp, int64_t n, const DropoutParams& params) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    out[i] = inp[i] * T(dropout_multiplier(params.p, params.seed, params.stream, i));
  }
}

template <typename T>
void dropout_backward(T* dinp, const T* dout, int64_t n, const DropoutParams& params) {
  dropout_forward(dinp, dout, n, params);  // the same mask and scale multiply the gradient
}

template void dropout_forward<float>(float*, const float*, int64_t, const DropoutParams&);
template void dropout_forward<double>(double*, const double*, int64_t, const DropoutParams&);
template void dropout_backward<float>(float*, const float*, int64_t, const DropoutParams&);
template void dropout_backward<double>(double*, const double*, int64_t, const DropoutParams&);

}  // namespace cpu
}  // namespace recforge
