#include <algorithm>
#include <cstring>

#include "kernels/rows.h"

namespace recforge::cpu {

template <typename T>
void gather_rows(T* out, const T* in, const int32_t* rows, int R, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < R; ++i) {
    std::copy_n(in + static_cast<int64_t>(rows[i]) * C, C, out + static_cast<int64_t>(i) * C);
  }
}

template <typename T>
void scatter_rows(T* out, const T* in, const int32_t* rows, int R, int N, int C) {
  std::fill_n(out, static_cast<int64_t>(N) * C, T(0));
#pragma omp parallel for schedule(static)
  for (int i = 0; i < R; ++i) {
    std::copy_n(in + static_cast<int64_t>(i) * C, C, out + static_cast<int64_t>(rows[i]) * C);
  }
}

template void gather_rows<float>(float*, const float*, const int32_t*, int, int);
template void gather_rows<double>(double*, const double*, const int32_t*, int, int);
template void gather_rows<int32_t>(int32_t*, const int32_t*, const int32_t*, int, int);
template void scatter_rows<float>(float*, const float*, const int32_t*, int, int, int);
template void scatter_rows<double>(double*, const double*, const int32_t*, int, int, int);
template void scatter_rows<int32_t>(int32_t*, const int32_t*, const int32_t*, int, int, int);

}  // namespace recforge::cpu
