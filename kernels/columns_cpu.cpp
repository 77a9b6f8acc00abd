// Column blocks joined and split on the CPU: one row at a time, one copy per block.
#include <algorithm>

#include "kernels/columns.h"

namespace recforge::cpu {

template <typename T>
void concat_columns(T* out, const ColumnParts<const T>& parts, int N) {
  const int64_t width = parts.total_width();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    T* row = out + n * width;
    for (int k = 0; k < parts.count; ++k) {
      const int64_t w = parts.widths[k];
      row = std::copy_n(parts.data[k] + n * w, w, row);
    }
  }
}

template <typename T>
void split_columns(const ColumnParts<T>& parts, const T* in, int N) {
  const int64_t width = parts.total_width();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* row = in + n * width;
    for (int k = 0; k < parts.count; ++k) {
      const int64_t w = parts.widths[k];
      std::copy_n(row, w, parts.data[k] + n * w);
      row += w;
    }
  }
}

template void concat_columns<float>(float*, const ColumnParts<const float>&, int);
template void concat_columns<double>(double*, const ColumnParts<const double>&, int);
template void split_columns<float>(const ColumnParts<float>&, const float*, int);
template void split_columns<double>(const ColumnParts<double>&, const double*, int);

}  // namespace recforge::cpu
