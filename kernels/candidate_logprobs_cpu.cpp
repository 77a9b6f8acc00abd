#include <algorithm>
#include <cmath>

#include "kernels/candidate_logprobs.h"
#include "kernels/vocab_panels.h"

namespace recforge::cpu {
namespace {

void check_candidates(const int32_t* candidates, int N, int V, int K) {
  for (int64_t i = 0; i < static_cast<int64_t>(N) * K; ++i) {
    RECFORGE_CHECK(candidates[i] >= 0 && candidates[i] < V, "candidate_logprobs: candidate ",
                   candidates[i], " of row ", i / K, " slot ", i % K, " is outside [0, ", V, ")");
  }
}

// One panel of rows: panel [rows, V] holds the logits on entry; logps [rows, K] and lse [rows].
template <typename T>
void panel_logprobs(T* logps, T* lse, T* panel, const int32_t* candidates, int rows, int V, int K) {
  for (int r = 0; r < rows; ++r) {
    T* row = panel + static_cast<int64_t>(r) * V;
    T* row_logps = logps + static_cast<int64_t>(r) * K;
    const int32_t* row_candidates = candidates + static_cast<int64_t>(r) * K;
    for (int k = 0; k < K; ++k) row_logps[k] = row[row_candidates[k]];
    lse[r] = exponentiate_row(row, V).lse;
    for (int k = 0; k < K; ++k) row_logps[k] -= lse[r];
  }
}

// One panel of rows: panel [rows, V] holds the logits on entry and dlogits on exit,
//   dlogits[r, v] = Σ_k dlogps[r, k] · [v = cand[r, k]] − S_r · exp(logits[r, v] − lse[r]).
template <typename T>
void panel_dlogits(T* panel, const T* dlogps, const T* lse, const int32_t* candidates, int rows,
                   int V, int K) {
  for (int r = 0; r < rows; ++r) {
    T* row = panel + static_cast<int64_t>(r) * V;
    const T* row_dlogps = dlogps + static_cast<int64_t>(r) * K;
    const int32_t* row_candidates = candidates + static_cast<int64_t>(r) * K;
    T total = 0;  // S_r
    for (int k = 0; k < K; ++k) total += row_dlogps[k];
    const T row_lse = lse[r];
#pragma omp simd
    for (int v = 0; v < V; ++v) row[v] = -total * vexp(row[v] - row_lse);
    for (int k = 0; k < K; ++k) row[row_candidates[k]] += row_dlogps[k];
  }
}

}  // namespace

template <typename T>
void candidate_logprobs_forward(T* logps, T* lse, const T* hidden, const T* wte,
                                const int32_t* candidates, int N, int C, int V, int K) {
  check_candidates(candidates, N, V, K);
  for_each_vocab_panel<T>(N, C, V, nullptr, [&](int64_t row0, int rows, T* panel, T*) {
    logits_panel(panel, hidden + row0 * C, wte, rows, C, V);
    panel_logprobs(logps + row0 * K, lse + row0, panel, candidates + row0 * K, rows, V, K);
  });
}

template <typename T>
void candidate_logprobs_backward(T* dhidden, T* dwte, const T* dlogps, const T* lse,
                                 const T* hidden, const T* wte, const int32_t* candidates, int N,
                                 int C, int V, int K) {
  check_candidates(candidates, N, V, K);
  for_each_vocab_panel<T>(N, C, V, dwte, [&](int64_t row0, int rows, T* panel, T* dwte_part) {
    const T* hidden_rows = hidden + row0 * C;
    logits_panel(panel, hidden_rows, wte, rows, C, V);
    panel_dlogits(panel, dlogps + row0 * K, lse + row0, candidates + row0 * K, rows, V, K);
    apply_dlogits_panel(dhidden + row0 * C, dwte_part, panel, hidden_rows, wte, rows, C, V);
  });
}

template void candidate_logprobs_forward<float>(float*, float*, const float*, const float*,
                                                const int32_t*, int, int, int, int);
template void candidate_logprobs_forward<double>(double*, double*, const double*, const double*,
                                                 const int32_t*, int, int, int, int);
template void candidate_logprobs_backward<float>(float*, float*, const float*, const float*,
                                                 const float*, const float*, const int32_t*, int,
                                                 int, int, int);
template void candidate_logprobs_backward<double>(double*, double*, const double*, const double*,
                                                  const double*, const double*, const int32_t*, int,
                                                  int, int, int);

}  // namespace recforge::cpu
