// The model's output layer fused with softmax cross-entropy, chunked so the logits never exist
// whole. The output weights are the (tied) embedding table: logits[n, v] = hidden[n, :] · wte[v,
// :]. For V = 12k items and N = 6400 tokens the logits alone would be 310 MB, and an unfused step
// reads and writes them several times; here only a small block of them exists at a time:
//   CPU:  a panel of R rows × all V logits per thread (R chosen so the panel stays in cache, at
//         most 128): one GEMM fills it, two passes over each row give lse and turn the panel into
//         dlogits in place, and two GEMMs apply it at once:
//         dhidden[rows] = dlogits · wte,  dwte += dlogitsᵀ · hidden[rows].
//   CUDA: all N rows × a chunk of the vocabulary: pass 1 streams over the chunks with the online
//         softmax (max, Σ exp) to get lse; pass 2 recomputes each chunk into dlogits and applies
//         it.
//
// Each row has K targets (targets [N, K] row-major; K = 1 is next-token prediction, K > 1 predicts
// each of the next K items from one position), target slot k weighted by w_k. With the indicator
// a[n, k] = [targets[n, k] ≠ ignore_index] and lse_n = log Σ_v exp(logits[n, v]):
//   losses[n]     = Σ_k w_k · a[n, k] · (lse_n − logits[n, targets[n, k]])
//   dlogits[n, v] = loss_scale · (W_n · softmax_n[v] − Σ_k w_k · a[n, k] · [v = targets[n, k]])
//   W_n           = Σ_k w_k · a[n, k]
// so a row whose targets are all ignored counts for nothing (loss 0, no gradient). With
// loss_scale = 1 / count_weighted_targets(...) the gradient is that of the weighted mean loss.
// K = 1 with w = {1} is plain softmax cross-entropy. To score a vocabulary sub-range (items only),
// pass wte offset to its first row and V = its size (targets index that range).
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/cross_entropy.h"
#include "kernels/dispatch.h"

namespace recforge {

inline constexpr int kMaxTargets = 8;

// The number of targets per row and the weight of each target slot (passed by value to kernels).
struct TargetWeights {
  int K = 1;
  float w[kMaxTargets] = {1, 1, 1, 1, 1, 1, 1, 1};
};

// Σ over targets [N, K] (host array) that are not ignore_index of their slot's weight w_k.
double count_weighted_targets(std::span<const int32_t> targets, const TargetWeights& weights,
                              int32_t ignore_index = kIgnoreIndex);

namespace cpu {
// losses [N]; dhidden [N, C] overwritten; dwte [V, C] accumulated; targets [N, K]. dhidden and
// dwte may both be null to compute the losses only (one pass), or dwte alone (a frozen output
// layer: the hidden states' gradient only).
template <typename T>
void classifier_forward_backward(T* losses, T* dhidden, T* dwte, const T* hidden, const T* wte,
                                 const int32_t* targets, TargetWeights weights, int N, int C, int V,
                                 T loss_scale, int32_t ignore_index);
}  // namespace cpu

namespace cuda {
void classifier_forward_backward(const Context& ctx, float* losses, float* dhidden, float* dwte,
                                 const float* hidden, const float* wte, const int32_t* targets,
                                 TargetWeights weights, int N, int C, int V, float loss_scale,
                                 int32_t ignore_index);
}  // namespace cuda

// Throws unless 1 ≤ K ≤ kMaxTargets and the K weights are finite and non-negative.
void check_target_weights(const TargetWeights& weights);

template <typename T>
void classifier_forward_backward(const Context& ctx, T* losses, T* dhidden, T* dwte,
                                 const T* hidden, const T* wte, const int32_t* targets,
                                 TargetWeights weights, int N, int C, int V, T loss_scale,
                                 int32_t ignore_index = kIgnoreIndex) {
  RECFORGE_CHECK(N >= 0 && C > 0 && V > 0, "classifier_forward_backward: bad shape N=", N, " C=", C,
                 " V=", V);
  RECFORGE_CHECK(dwte == nullptr || dhidden != nullptr,
                 "classifier_forward_backward: dwte is computed with dhidden");
  check_target_weights(weights);
  dispatch<std::is_same_v<T, float>>(
      ctx, "classifier_forward_backward",
      [&](const auto& on) {
        cuda::classifier_forward_backward(on, losses, dhidden, dwte, hidden, wte, targets, weights,
                                          N, C, V, loss_scale, ignore_index);
      },
      [&] {
        cpu::classifier_forward_backward(losses, dhidden, dwte, hidden, wte, targets, weights, N, C,
                                         V, loss_scale, ignore_index);
      });
}

// One target per row (targets [N]), weight 1: next-token cross-entropy.
template <typename T>
void classifier_forward_backward(const Context& ctx, T* losses, T* dhidden, T* dwte,
                                 const T* hidden, const T* wte, const int32_t* targets, int N,
                                 int C, int V, T loss_scale, int32_t ignore_index = kIgnoreIndex) {
  classifier_forward_backward(ctx, losses, dhidden, dwte, hidden, wte, targets, TargetWeights{}, N,
                              C, V, loss_scale, ignore_index);
}

}  // namespace recforge
