#include <algorithm>
#include <cmath>

#include "kernels/classifier.h"
#include "kernels/vocab_panels.h"

namespace recforge {
namespace cpu {
namespace {

// Row r's weighted targets: the valid ones (not ignore_index) with their weights, and W = Σ w.
template <typename T>
struct RowTargets {
  int count = 0;
  int32_t index[kMaxTargets];
  T weight[kMaxTargets];
  T total = 0;  // W_n
};

template <typename T>
RowTargets<T> valid_targets(const int32_t* row_targets, const TargetWeights& weights,
                            int32_t ignore_index) {
  RowTargets<T> out;
  for (int k = 0; k < weights.K; ++k) {
    if (row_targets[k] == ignore_index) continue;
    out.index[out.count] = row_targets[k];
    out.weight[out.count] = static_cast<T>(weights.w[k]);
    out.total += out.weight[out.count];
    ++out.count;
  }
  return out;
}

// One panel of rows: losses, and with a gradient, dlogits applied to dhidden and dwte_part.
// targets [rows, K].
template <typename T>
void panel_forward_backward(T* losses, T* dhidden_rows, T* dwte_part, T* panel,
                            const T* hidden_rows, const T* wte, const int32_t* targets,
                            const TargetWeights& weights, int rows, int C, int V, T loss_scale,
                            int32_t ignore_index) {
  logits_panel(panel, hidden_rows, wte, rows, C, V);
  for (int r = 0; r < rows; ++r) {
    T* row = panel + static_cast<int64_t>(r) * V;
    const RowTargets<T> t =
        valid_targets<T>(targets + static_cast<int64_t>(r) * weights.K, weights, ignore_index);
    if (t.count == 0) {
      losses[r] = 0;
      if (dhidden_rows) std::fill(row, row + V, T(0));
      continue;
    }
    T target_logits[kMaxTargets];
    for (int k = 0; k < t.count; ++k) target_logits[k] = row[t.index[k]];
    const RowSoftmax<T> softmax = exponentiate_row(row, V);
    T loss = 0;
    for (int k = 0; k < t.count; ++k) loss += t.weight[k] * (softmax.lse - target_logits[k]);
    losses[r] = loss;
    if (!dhidden_rows) continue;
    const T scale = loss_scale * t.total / softmax.sum;
#pragma omp simd
    for (int v = 0; v < V; ++v) row[v] *= scale;
    for (int k = 0; k < t.count; ++k) row[t.index[k]] -= loss_scale * t.weight[k];
  }
  if (dhidden_rows) {
    apply_dlogits_panel(dhidden_rows, dwte_part, panel, hidden_rows, wte, rows, C, V);
  }
}

}  // namespace

template <typename T>
void classifier_forward_backward(T* losses, T* dhidden, T* dwte, const T* hidden, const T* wte,
                                 const int32_t* targets, TargetWeights weights, int N, int C, int V,
                                 T loss_scale, int32_t ignore_index) {
  const int K = weights.K;
  for (int64_t i = 0; i < static_cast<int64_t>(N) * K; ++i) {  // checked before the parallel
    RECFORGE_CHECK(targets[i] == ignore_index || (targets[i] >= 0 && targets[i] < V),  // region
                   "classifier: target ", targets[i], " of row ", i / K, " slot ", i % K,
                   " is outside [0, ", V, ")");
  }
  const bool backward = dhidden != nullptr;
  for_each_vocab_panel<T>(N, C, V, dwte, [&](int64_t row0, int rows, T* panel, T* dwte_part) {
    panel_forward_backward(losses + row0, backward ? dhidden + row0 * C : nullptr, dwte_part, panel,
                           hidden + row0 * C, wte, targets + row0 * K, weights, rows, C, V,
                           loss_scale, ignore_index);
  });
}

template void classifier_forward_backward<float>(float*, float*, float*, const float*, const float*,
                                                 const int32_t*, TargetWeights, int, int, int,
                                                 float, int32_t);
template void classifier_forward_backward<double>(double*, double*, double*, const double*,
                                                  const double*, const int32_t*, TargetWeights, int,
                                                  int, int, double, int32_t);

}  // namespace cpu

double count_weighted_targets(std::span<const int32_t> targets, const TargetWeights& weights,
                              int32_t ignore_index) {
  check_target_weights(weights);
  RECFORGE_CHECK(targets.size() % weights.K == 0, "count_weighted_targets: ", targets.size(),
                 " targets are not a whole number of rows of K=", weights.K);
  double total = 0.0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] != ignore_index) total += weights.w[i % weights.K];
  }
  return total;
}

void check_target_weights(const TargetWeights& weights) {
  RECFORGE_CHECK(weights.K >= 1 && weights.K <= kMaxTargets,
                 "classifier: targets per row K=", weights.K, " is outside [1, ", kMaxTargets, "]");
  for (int k = 0; k < weights.K; ++k) {
    RECFORGE_CHECK(std::isfinite(weights.w[k]) && weights.w[k] >= 0.0f, "classifier: weight w[", k,
                   "]=", weights.w[k], " of target slot ", k, " must be finite and non-negative");
  }
}

}  // namespace recforge
