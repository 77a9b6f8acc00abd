#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/blas.h"
#include "kernels/cpu_math.h"
#include "kernels/embedding.h"
#include "kernels/math.h"
#include "kernels/parallel.h"
#include "kernels/sampled_softmax.h"

namespace recforge::cpu {
namespace {

// Per-thread scratch, kept between calls so steady-state steps do not allocate.
template <typename T>
struct ThreadScratch {
  std::vector<T> panel;    // [rows, P] negative logits, then their gradients dS / τ
  std::vector<T> dE_part;  // [P, C] this thread's share of dE = dSᵀ · hidden / τ
};

// Scratch shared by the threads of one call.
template <typename T>
struct CallScratch {
  std::vector<T> negatives;  // [P, C] the gathered rows E = wte[negatives]
  std::vector<T> dE;         // [P, C] Σ over threads of dE_part
  std::vector<T> dpos;       // [N] dS_pos / τ
};

template <typename T>
ThreadScratch<T>& thread_scratch() {
  thread_local ThreadScratch<T> scratch;
  return scratch;
}

template <typename T>
CallScratch<T>& call_scratch() {
  thread_local CallScratch<T> scratch;
  return scratch;
}

// One row: `row` [P] holds h · e_j / τ on entry. Returns the loss; with `scale` = loss_scale / τ
// non-zero (a backward), leaves dS[n, j] / τ in `row` and dS_pos / τ in *dpos.
template <typename T>
T row_forward_backward(T* row, T* dpos, const T* h, const SampledSoftmaxInputs<T>& in,
                       int32_t positive, T log_q_positive, T scale, bool backward) {
  const T inv_temperature = T(1) / in.temperature;
  const T s_pos =
      simd_dot(h, in.wte + static_cast<int64_t>(positive) * in.C, in.C) * inv_temperature -
      log_q_positive;
  T max = s_pos;
  for (int j = 0; j < in.P; ++j) {
    row[j] = sampled_negative_logit(row[j], in.log_q_negative[j], in.negatives[j], positive);
    max = std::max(max, row[j]);
  }
  T sum = elementwise_exp(s_pos - max);
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < in.P; ++j) sum += elementwise_exp(row[j] - max);
  const T lse = max + std::log(sum);
  if (backward) {
#pragma omp simd
    for (int j = 0; j < in.P; ++j) row[j] = sampled_logit_gradient(row[j], lse, scale, false);
    *dpos = sampled_logit_gradient(s_pos, lse, scale, true);
  }
  return lse - s_pos;
}

// One panel of rows: losses, and with a gradient, dhidden[rows] and this thread's dE_part.
template <typename T>
void panel_forward_backward(T* losses, T* dhidden_rows, T* dpos, T* dE_part, T* panel,
                            const T* negatives, const SampledSoftmaxInputs<T>& in, int64_t row0,
                            int rows, T loss_scale) {
  const int C = in.C, P = in.P;
  const T* hidden_rows = in.hidden + row0 * C;
  const bool backward = dhidden_rows != nullptr;
  const T scale = loss_scale / in.temperature;
  gemm(Transpose::kNo, Transpose::kYes, rows, P, C, T(1) / in.temperature, hidden_rows, C,
       negatives, C, T(0), panel, P);
  for (int r = 0; r < rows; ++r) {
    T* row = panel + static_cast<int64_t>(r) * P;
    const int32_t positive = in.positives[row0 + r];
    if (positive == in.ignore_index) {
      losses[r] = 0;
      if (backward) {
        std::fill(row, row + P, T(0));
        dpos[r] = 0;
      }
      continue;
    }
    losses[r] = row_forward_backward(row, dpos + r, hidden_rows + static_cast<int64_t>(r) * C, in,
                                     positive, in.log_q_positive[row0 + r], scale, backward);
  }
  if (!backward) return;
  // dhidden[rows] = (dS / τ) · E + (dS_pos / τ) · e_p
  gemm(Transpose::kNo, Transpose::kNo, rows, C, P, T(1), panel, P, negatives, C, T(0), dhidden_rows,
       C);
  for (int r = 0; r < rows; ++r) {
    const int32_t positive = in.positives[row0 + r];
    if (positive == in.ignore_index) continue;
    const T* e = in.wte + static_cast<int64_t>(positive) * C;
    T* d = dhidden_rows + static_cast<int64_t>(r) * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) d[c] += dpos[r] * e[c];
  }
  // dE_part += (dS / τ)ᵀ · hidden[rows]
  gemm(Transpose::kYes, Transpose::kNo, P, C, rows, T(1), panel, P, hidden_rows, C, T(1), dE_part,
       C);
}

// Candidate keys for the table gradient: positives[n] at n (V when ignored, a key that is skipped)
// and negatives[j] at N + j.
ScatterIndexHost candidate_index(const int32_t* positives, const int32_t* negatives, int N, int P,
                                 int V, int32_t ignore_index) {
  std::vector<int32_t> keys(static_cast<size_t>(N) + P);
  for (int n = 0; n < N; ++n) keys[n] = positives[n] == ignore_index ? V : positives[n];
  std::copy(negatives, negatives + P, keys.begin() + N);
  return build_scatter_index(keys, V + 1);
}

// dwte[k] += its contributions in ascending candidate order: dpos[n] · hidden[n] for a positive
// row n, dE[j] for negative j. Each table row has one owner: deterministic.
template <typename T>
void scatter_candidates(T* dwte, const ScatterIndex& index, const T* dpos, const T* dE,
                        const T* hidden, int N, int C, int V) {
#pragma omp for schedule(static)
  for (int g = 0; g < index.num_groups; ++g) {
    if (index.keys[g] == V) continue;  // the ignored rows
    T* out = dwte + static_cast<int64_t>(index.keys[g]) * C;
    for (int i = index.starts[g]; i < index.starts[g + 1]; ++i) {
      const int id = index.rows[i];
      if (id < N) {
        const T* h = hidden + static_cast<int64_t>(id) * C;
        for (int c = 0; c < C; ++c) out[c] += dpos[id] * h[c];
      } else {
        const T* d = dE + static_cast<int64_t>(id - N) * C;
        for (int c = 0; c < C; ++c) out[c] += d[c];
      }
    }
  }
}

void check_indices(const int32_t* positives, const int32_t* negatives, int N, int P, int V,
                   int32_t ignore_index) {
  for (int n = 0; n < N; ++n) {
    RECFORGE_CHECK(positives[n] == ignore_index || (positives[n] >= 0 && positives[n] < V),
                   "sampled_softmax: positive ", positives[n], " of row ", n, " is outside [0, ", V,
                   ")");
  }
  for (int j = 0; j < P; ++j) {
    RECFORGE_CHECK(negatives[j] >= 0 && negatives[j] < V, "sampled_softmax: negative ",
                   negatives[j], " at ", j, " is outside [0, ", V, ")");
  }
}

}  // namespace

template <typename T>
void sampled_softmax_forward_backward(T* losses, T* dhidden, T* dwte,
                                      const SampledSoftmaxInputs<T>& in, T loss_scale) {
  const int N = in.N, C = in.C, P = in.P;
  check_indices(in.positives, in.negatives, N, P, in.V, in.ignore_index);  // before the region
  const bool backward = dhidden != nullptr;
  const ScatterIndexHost index =
      backward ? candidate_index(in.positives, in.negatives, N, P, in.V, in.ignore_index)
               : ScatterIndexHost{};
  CallScratch<T>& shared = call_scratch<T>();
  shared.negatives.resize(static_cast<size_t>(P) * C);
  if (backward) {
    shared.dE.assign(static_cast<size_t>(P) * C, T(0));
    shared.dpos.resize(N);
  }
  const int rows_per_panel = panel_rows<T>(P);
  const int threads = omp_get_max_threads();
  std::vector<T*> parts(threads, nullptr);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
#pragma omp for schedule(static)
    for (int j = 0; j < P; ++j) {
      const T* e = in.wte + static_cast<int64_t>(in.negatives[j]) * C;
      std::copy(e, e + C, shared.negatives.begin() + static_cast<int64_t>(j) * C);
    }
    ThreadScratch<T>& scratch = thread_scratch<T>();
    scratch.panel.resize(static_cast<size_t>(rows_per_panel) * P);
    if (backward) {
      scratch.dE_part.assign(static_cast<size_t>(P) * C, T(0));
      parts[t] = scratch.dE_part.data();
    }
    // Each thread owns a fixed, contiguous range of panels, so no sum depends on scheduling.
    Range panels = partition((N + rows_per_panel - 1) / rows_per_panel, t, team);
    for (int64_t p = panels.begin; p < panels.end; ++p) {
      const int64_t row0 = p * rows_per_panel;
      const int rows = static_cast<int>(std::min<int64_t>(rows_per_panel, N - row0));
      panel_forward_backward(losses + row0, backward ? dhidden + row0 * C : nullptr,
                             backward ? shared.dpos.data() + row0 : nullptr, scratch.dE_part.data(),
                             scratch.panel.data(), shared.negatives.data(), in, row0, rows,
                             loss_scale);
    }
    if (backward) {
#pragma omp barrier
      // dE = Σ_t parts[t] in thread order, each thread summing its own slice.
      Range slice = partition(static_cast<int64_t>(P) * C, t, team);
      for (int part = 0; part < team; ++part) {
        for (int64_t i = slice.begin; i < slice.end; ++i) shared.dE[i] += parts[part][i];
      }
#pragma omp barrier
      scatter_candidates(dwte, index.view(), shared.dpos.data(), shared.dE.data(), in.hidden, N, C,
                         in.V);
    }
  }
}

template void sampled_softmax_forward_backward<float>(float*, float*, float*,
                                                      const SampledSoftmaxInputs<float>&, float);
template void sampled_softmax_forward_backward<double>(double*, double*, double*,
                                                       const SampledSoftmaxInputs<double>&, double);

}  // namespace recforge::cpu
