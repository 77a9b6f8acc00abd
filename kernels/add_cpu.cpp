// y += x on the CPU.
#include "kernels/add.h"

namespace recforge::cpu {

template <typename T>
void add_into(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

template void add_into<float>(float*, const float*, int64_t);
template void add_into<double>(double*, const double*, int64_t);

}  // namespace recforge::cpu
