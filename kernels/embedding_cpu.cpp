#include "kernels/embedding.h"

namespace recforge {

ScatterIndexHost build_scatter_index(std::span<const int32_t> keys, int key_limit) {
  std::vector<int32_t> counts(key_limit + 1, 0);
  for (size_t n = 0; n < keys.size(); ++n) {
    RECFORGE_CHECK(keys[n] >= 0 && keys[n] < key_limit, "scatter key ", keys[n], " at row ", n,
                   " is outside [0, ", key_limit, ")");
    ++counts[keys[n] + 1];
  }
  ScatterIndexHost index;
  index.starts.push_back(0);
  std::vector<int32_t> slot(key_limit, -1);  // group of each key present
  for (int k = 0; k < key_limit; ++k) {
    if (counts[k + 1] == 0) continue;
    slot[k] = static_cast<int32_t>(index.keys.size());
    index.keys.push_back(k);
    index.starts.push_back(index.starts.back() + counts[k + 1]);
  }
  index.rows.resize(keys.size());
  std::vector<int32_t> cursor(index.starts.begin(), index.starts.end() - 1);
  for (size_t n = 0; n < keys.size(); ++n) {
    index.rows[cursor[slot[keys[n]]]++] = static_cast<int32_t>(n);
  }
  return index;
}

namespace cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* positions, const T* wte,
                       const T* wpe, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* token_row = wte + static_cast<int64_t>(tokens[n]) * C;
    const T* position_row = wpe + static_cast<int64_t>(positions[n]) * C;
    T* out_row = out + static_cast<int64_t>(n) * C;
    for (int c = 0; c < C; ++c) out_row[c] = token_row[c] + position_row[c];
  }
}

namespace {
// table[keys[g], :] += Σ rows of group g, each group owned by one thread: deterministic.
template <typename T>
void scatter_add_rows(T* table, const T* dout, const ScatterIndex& index, int C) {
  if (table == nullptr) return;
#pragma omp parallel for schedule(dynamic, 16)
  for (int g = 0; g < index.num_groups; ++g) {
    T* table_row = table + static_cast<int64_t>(index.keys[g]) * C;
    for (int r = index.starts[g]; r < index.starts[g + 1]; ++r) {
      const T* dout_row = dout + static_cast<int64_t>(index.rows[r]) * C;
      for (int c = 0; c < C; ++c) table_row[c] += dout_row[c];
    }
  }
}
}  // namespace

template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const ScatterIndex& token_index,
                        const ScatterIndex& position_index, int C) {
  scatter_add_rows(dwte, dout, token_index, C);
  scatter_add_rows(dwpe, dout, position_index, C);
}

template void embedding_forward<float>(float*, const int32_t*, const int32_t*, const float*,
                                       const float*, int, int);
template void embedding_forward<double>(double*, const int32_t*, const int32_t*, const double*,
                                        const double*, int, int);
template void embedding_backward<float>(float*, float*, const float*, const ScatterIndex&,
                                        const ScatterIndex&, int);
template void embedding_backward<double>(double*, double*, const double*, const ScatterIndex&,
                                         const ScatterIndex&, int);

}  // namespace cpu
}  // namespace recforge
