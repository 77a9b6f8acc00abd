// Sampled softmax cross-entropy with the logQ correction: each row scores its positive against P
// negatives shared by the whole batch instead of against every item (Jean et al., ACL'15; Yi et
// al., RecSys'19). With h = hidden[n, :] (C channels), e_i = wte[i, :] and p = positives[n]:
//   s_pos[n]    = h · e_p / τ − log_q_positive[n]
//   s[n, j]     = h · e_{negatives[j]} / τ − log_q_negative[j]        j = 0 .. P−1
//                 = −∞ where negatives[j] = p (a sampled copy of the positive is removed)
//   losses[n]   = logsumexp(s_pos[n], s[n, 0..P−1]) − s_pos[n]
// log_q is the log of each candidate's sampling probability (zeros: no correction); τ > 0 is the
// temperature. Duplicated negatives each count as a candidate. Rows whose positive is
// ignore_index count for nothing (loss 0, no gradient). With π the row's softmax over its P + 1
// candidates and g = loss_scale, the logit gradients are
//   dS_pos[n] = g · (π_pos − 1),   dS[n, j] = g · π_j   (0 for a removed negative)
// and, since ∂s/∂h = e/τ and ∂s/∂e = h/τ,
//   dhidden[n]         = (dS_pos[n] · e_p + Σ_j dS[n, j] · e_{negatives[j]}) / τ
//   dwte[p]           += dS_pos[n] · h / τ                       for every counted row n
//   dwte[negatives[j]] += Σ_n dS[n, j] · h_n / τ                  (= dSᵀ · hidden / τ, a GEMM)
// Memory: the gathered negatives E [P, C] and a panel of the [N, P] scores exist at a time, never
// the [N, V] logits. Determinism without atomics: each table row's gradient is one owner's sum of
// its contributions in a fixed order (positive rows n ascending, then negatives j ascending):
//   CPU:  a host-built ScatterIndex (kernels/embedding.h) over the N + P candidate keys;
//   CUDA: the same grouping from a stable device radix sort of the keys (CUB).
// To score a vocabulary sub-range (items only), pass wte offset to its first row and V = its size;
// positives and negatives index that range.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/cross_entropy.h"
#include "kernels/dispatch.h"

namespace recforge {

// The op's inputs; pointers live on the device that runs it.
template <typename T>
struct SampledSoftmaxInputs {
  const T* hidden = nullptr;           // [N, C]
  const T* wte = nullptr;              // [V, C]
  const int32_t* positives = nullptr;  // [N], in [0, V) or ignore_index
  const int32_t* negatives = nullptr;  // [P], in [0, V)
  const T* log_q_positive = nullptr;   // [N]
  const T* log_q_negative = nullptr;   // [P]
  int N = 0, C = 0, V = 0, P = 0;
  T temperature = 1;
  int32_t ignore_index = kIgnoreIndex;
};

namespace cpu {
// losses [N]; dhidden [N, C] overwritten; dwte [V, C] accumulated. dhidden and dwte may both be
// null to compute the losses only.
template <typename T>
void sampled_softmax_forward_backward(T* losses, T* dhidden, T* dwte,
                                      const SampledSoftmaxInputs<T>& in, T loss_scale);
}  // namespace cpu

namespace cuda {
// Positives and negatives are not range-checked (that would need a sync): an out-of-range one
// gives NaN losses instead of an out-of-bounds read, and adds no gradient to the table.
void sampled_softmax_forward_backward(const Context& ctx, float* losses, float* dhidden,
                                      float* dwte, const SampledSoftmaxInputs<float>& in,
                                      float loss_scale);
}  // namespace cuda

template <typename T>
void sampled_softmax_forward_backward(const Context& ctx, T* losses, T* dhidden, T* dwte,
                                      const SampledSoftmaxInputs<T>& in, T loss_scale) {
  RECFORGE_CHECK(in.N >= 0 && in.C > 0 && in.V > 0 && in.P > 0,
                 "sampled_softmax: bad shape N=", in.N, " C=", in.C, " V=", in.V, " P=", in.P);
  RECFORGE_CHECK(in.temperature > 0 && std::isfinite(in.temperature),
                 "sampled_softmax: temperature ", in.temperature, " must be finite and > 0");
  RECFORGE_CHECK((dhidden == nullptr) == (dwte == nullptr),
                 "sampled_softmax: dhidden and dwte are computed together");
  dispatch<std::is_same_v<T, float>>(
      ctx, "sampled_softmax_forward_backward",
      [&](const auto& on) {
        cuda::sampled_softmax_forward_backward(on, losses, dhidden, dwte, in, loss_scale);
      },
      [&] { cpu::sampled_softmax_forward_backward(losses, dhidden, dwte, in, loss_scale); });
}

}  // namespace recforge
