#include <type_traits>

#include "kernels/gelu.h"
#include "kernels/math.h"

namespace recforge::cpu {
template <typename A>
void gelu_forward(A* out, const A* inp, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = store_as<A>(gelu(load_as_float(inp[i])));
}

template <typename Dinp, typename In, typename Dout>
void gelu_backward(Dinp* dinp, const In* inp, const Dout* dout, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    dinp[i] = store_as<Dinp>(gelu_grad(load_as_float(inp[i])) * load_as_float(dout[i]));
  }
}

template void gelu_forward<float>(float*, const float*, int64_t);
template void gelu_forward<double>(double*, const double*, int64_t);
template void gelu_forward<bf16>(bf16*, const bf16*, int64_t);
template void gelu_backward<float, float, float>(float*, const float*, const float*, int64_t);
template void gelu_backward<double, double, double>(double*, const double*, const double*, int64_t);
template void gelu_backward<bf16, bf16, float>(bf16*, const bf16*, const float*, int64_t);

}  // namespace recforge::cpu
