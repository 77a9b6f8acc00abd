// The CPU skeleton shared by the fused output-layer ops (kernels/classifier.h,
// kernels/candidate_logprobs.h), which score N rows against the V rows of the tied embedding table
// without keeping the [N, V] logits: rows go in panels of R = panel_rows<T>(V) (a panel of logits
// stays in cache), each thread owning a fixed contiguous range of panels:
//   panel [R, V]  = hidden[rows] · wteᵀ                       (logits_panel, one GEMM)
//   the op turns the panel into losses or log-probabilities and, for a backward, into dlogits
//   dhidden[rows] = dlogits · wte,  dwte_part += dlogitsᵀ · hidden[rows]   (apply_dlogits_panel)
// and after all panels dwte += Σ_t dwte_part[t] in thread order, each thread summing its own slice
// of the table: no sum depends on scheduling, so results are bitwise reproducible.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/blas.h"
#include "kernels/cpu_math.h"
#include "kernels/parallel.h"

namespace recforge::cpu {

// Per-thread scratch, kept between calls so steady-state steps do not allocate.
template <typename T>
struct VocabPanelScratch {
  std::vector<T> panel;      // [rows, V] logits, then dlogits
  std::vector<T> dwte_part;  // [V, C] this thread's share of dwte
};

template <typename T>
VocabPanelScratch<T>& vocab_panel_scratch() {
  thread_local VocabPanelScratch<T> scratch;
  return scratch;
}

template <typename T>
struct RowSoftmax {
  T lse;  // log Σ_v exp(logit_v)
  T sum;  // Σ_v exp(logit_v − max)
};

// Turns one row of logits into exp(logit − max) in place.
template <typename T>
RowSoftmax<T> exponentiate_row(T* row, int V) {
  T max = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : max)
  for (int v = 0; v < V; ++v) max = std::max(max, row[v]);
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int v = 0; v < V; ++v) {
    row[v] = vexp(row[v] - max);
    sum += row[v];
  }
  return {max + std::log(sum), sum};
}

// panel[rows, V] = hidden_rows[rows, C] · wte[V, C]ᵀ
template <typename T>
void logits_panel(T* panel, const T* hidden_rows, const T* wte, int rows, int C, int V) {
  gemm(Transpose::kNo, Transpose::kYes, rows, V, C, T(1), hidden_rows, C, wte, C, T(0), panel, V);
}

// dhidden_rows[rows, C] = dlogits[rows, V] · wte[V, C];  dwte_part[V, C] += dlogitsᵀ · hidden_rows
// (skipped when dwte_part is null)
template <typename T>
void apply_dlogits_panel(T* dhidden_rows, T* dwte_part, const T* dlogits, const T* hidden_rows,
                         const T* wte, int rows, int C, int V) {
  gemm(Transpose::kNo, Transpose::kNo, rows, C, V, T(1), dlogits, V, wte, C, T(0), dhidden_rows, C);
  if (dwte_part == nullptr) return;  // a frozen output layer
  gemm(Transpose::kYes, Transpose::kNo, V, C, rows, T(1), dlogits, V, hidden_rows, C, T(1),
       dwte_part, C);
}

// Calls panel_fn(row0, rows, panel, dwte_part) for every panel of rows [row0, row0 + rows) of N,
// on the calling thread's scratch: panel [rows_per_panel, V], dwte_part [V, C] zeroed per call
// (null when dwte is null, a forward only). Afterwards dwte [V, C] += Σ of the threads' dwte_part.
template <typename T, typename PanelFn>
void for_each_vocab_panel(int N, int C, int V, T* dwte, PanelFn&& panel_fn) {
  const bool backward = dwte != nullptr;
  const int rows_per_panel = panel_rows<T>(V);
  const int threads = omp_get_max_threads();
  std::vector<T*> parts(threads, nullptr);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    VocabPanelScratch<T>& scratch = vocab_panel_scratch<T>();
    scratch.panel.resize(static_cast<size_t>(rows_per_panel) * V);
    if (backward) {
      scratch.dwte_part.assign(static_cast<size_t>(V) * C, T(0));
      parts[t] = scratch.dwte_part.data();
    }
    Range panels = partition((N + rows_per_panel - 1) / rows_per_panel, t, team);
    for (int64_t p = panels.begin; p < panels.end; ++p) {
      const int64_t row0 = p * rows_per_panel;
      const int rows = static_cast<int>(std::min<int64_t>(rows_per_panel, N - row0));
      panel_fn(row0, rows, scratch.panel.data(), parts[t]);
    }
#pragma omp barrier
    if (backward) {
      Range slice = partition(static_cast<int64_t>(V) * C, t, team);
      for (int part = 0; part < team; ++part) {
        for (int64_t i = slice.begin; i < slice.end; ++i) dwte[i] += parts[part][i];
      }
    }
  }
}

}  // namespace recforge::cpu
