// Direct preference optimization losses over N preference pairs (Rafailov et al., NeurIPS'23), on
// the log-probabilities of K candidates per pair (kernels/candidate_logprobs.h): candidate 0 is the
// chosen item, 1..K−1 the rejected ones. Per pair, with policy log-probs π [K], frozen reference
// log-probs ρ [K], β > 0 and label smoothing ε:
//   r_k = β (π_k − ρ_k)                          the implicit reward of candidate k
//   h_k = (π_0 − π_k) − (ρ_0 − ρ_k),  k ≥ 1      the policy's log-ratio margin over the reference's
// Pairwise losses, averaged over the K − 1 rejected candidates when K > 2, z_k = β h_k:
//   sigmoid  ℓ = −(1−ε) log σ(z) − ε log σ(−z)               (DPO; ε > 0: conservative DPO, TRL)
//   robust   ℓ = (−(1−ε) log σ(z) + ε log σ(−z)) / (1 − 2ε)   (Chowdhury et al. 2024, TRL)
//   ipo      ℓ = (h − 1/(2β))²                                (Azar et al. 2023)
//   hinge    ℓ = max(0, 1 − z)                                (SLiC, Zhao et al. 2023)
// Softmax DPO over all rejected candidates at once (S-DPO, Chen et al. 2024):
//   sdpo     ℓ = −log σ(−s),  s = log Σ_{k≥1} exp(−z_k) = log Σ_{k≥1} exp(r_k − r_0)
// (computed as softplus(s), s a log-sum-exp around its largest term; with K = 2 it is sigmoid).
// ε is label smoothing for sigmoid and robust only (0 ≤ ε < 1/2); the other losses require ε = 0.
//
// Outputs per pair n:
//   losses[n]        ℓ_n
//   dpolicy[n, k]    loss_scale · ∂ℓ_n/∂π_k (e.g. loss_scale = 1/N: the gradient of the mean);
//                    the K entries sum to zero, and the reference gets no gradient
//   metrics[n, 0..3] rewards/chosen = r_0, rewards/rejected = mean_{k≥1} r_k,
//                    margins = r_0 − mean_{k≥1} r_k, accuracy = [r_0 > mean_{k≥1} r_k]
// With K > 2 the rejected reward and the accuracy compare the chosen item with the MEAN reward of
// the rejected ones (K = 2: TRL's per-pair rewards/accuracies). dpolicy and metrics may be null.
// At the first step (policy = reference) every r_k and margin is exactly 0 and sigmoid gives
// exactly log 2.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"
#include "kernels/math.h"

namespace recforge {

enum class DpoLoss { kSigmoid, kIpo, kHinge, kRobust, kSdpo };

struct DpoParams {
  DpoLoss type = DpoLoss::kSigmoid;
  float beta = 0.1f;
  float label_smoothing = 0;
};

// Columns of the metrics [N, kDpoNumMetrics].
enum DpoMetric : int {
  kDpoRewardChosen = 0,
  kDpoRewardRejected = 1,
  kDpoMargin = 2,
  kDpoAccuracy = 3,
  kDpoNumMetrics = 4,
};

// "sigmoid" | "ipo" | "hinge" | "robust" | "sdpo"; anything else throws, listing them.
DpoLoss parse_dpo_loss(std::string_view name);
std::string dpo_loss_name(DpoLoss type);
// Throws unless β is finite and > 0 and ε fits the loss (see above).
void check_dpo_params(const DpoParams& params);

// ---- Per-pair math, shared by both backends -----------------------------------------------------
template <typename T>
struct LossSlope {
  T loss;
  T slope;  // ∂loss/∂h
};

// One chosen-vs-rejected comparison of the pairwise losses, as a function of h.
template <typename T>
RECFORGE_HD LossSlope<T> dpo_pairwise_loss(T h, DpoParams params) {
  const T beta = params.beta, eps = params.label_smoothing, z = beta * h;
  switch (params.type) {
    case DpoLoss::kSigmoid:  // ∂ℓ/∂z = (1−ε)(σ(z) − 1) + ε σ(z)
      return {(T(1) - eps) * softplus(-z) + eps * softplus(z), beta * (sigmoid(z) - (T(1) - eps))};
    case DpoLoss::kRobust:  // ∂ℓ/∂z = ((1−ε)(σ(z) − 1) − ε σ(z)) / (1 − 2ε)
      return {((T(1) - eps) * softplus(-z) - eps * softplus(z)) / (T(1) - T(2) * eps),
              beta * (sigmoid(z) - (T(1) - eps) / (T(1) - T(2) * eps))};
    case DpoLoss::kIpo: {
      const T d = h - T(1) / (T(2) * beta);
      return {d * d, T(2) * d};
    }
    case DpoLoss::kHinge:
      return {z < T(1) ? T(1) - z : T(0), z < T(1) ? -beta : T(0)};
    default:  // S-DPO is not pairwise (sdpo_loss)
      return {T(NAN), T(NAN)};
  }
}

// S-DPO's k-th logit, a_k = −β h_k = r_k − r_0 (k ≥ 1).
template <typename T>
RECFORGE_HD T sdpo_logit(const T* policy, const T* reference, int k, T beta) {
  return -beta * ((policy[0] - policy[k]) - (reference[0] - reference[k]));
}

// S-DPO on one pair: returns ℓ = softplus(s), s = log Σ_{k≥1} exp(a_k), and with dpolicy writes
// loss_scale · ∂ℓ/∂π_k = loss_scale · β σ(s) softmax(a)_k for k ≥ 1 (dpolicy[0] is left to the
// caller). s is the largest a_m plus log1p of the sum of the other terms exp(a_k − a_m).
template <typename T>
RECFORGE_HD T sdpo_loss(T* dpolicy, const T* policy, const T* reference, int K, T beta,
                        T loss_scale) {
  int largest = 1;
  T a_max = sdpo_logit(policy, reference, 1, beta);
  for (int k = 2; k < K; ++k) {
    const T a = sdpo_logit(policy, reference, k, beta);
    if (a > a_max) {
      largest = k;
      a_max = a;
    }
  }
  T others = 0;
  for (int k = 1; k < K; ++k) {
    if (k != largest) others += std::exp(sdpo_logit(policy, reference, k, beta) - a_max);
  }
  const T s = a_max + std::log1p(others);
  if (dpolicy != nullptr) {
    const T scale = loss_scale * beta * sigmoid(s) / (T(1) + others);
    for (int k = 1; k < K; ++k) {
      dpolicy[k] =
          k == largest ? scale : scale * std::exp(sdpo_logit(policy, reference, k, beta) - a_max);
    }
  }
  return softplus(s);
}

// One pair: policy, reference [K]; writes dpolicy [K] and metrics [kDpoNumMetrics] when non-null
// and returns the loss.
template <typename T>
RECFORGE_HD T dpo_pair_loss(T* dpolicy, T* metrics, const T* policy, const T* reference, int K,
                            DpoParams params, T loss_scale) {
  const T beta = params.beta;
  const int rejected = K - 1;
  T loss = 0;
  if (params.type == DpoLoss::kSdpo) {
    loss = sdpo_loss(dpolicy, policy, reference, K, beta, loss_scale);
  } else {
    for (int k = 1; k < K; ++k) {
      const T h = (policy[0] - policy[k]) - (reference[0] - reference[k]);
      const LossSlope<T> term = dpo_pairwise_loss(h, params);
      loss += term.loss;
      if (dpolicy != nullptr) dpolicy[k] = -loss_scale * term.slope / T(rejected);
    }
    loss /= T(rejected);
  }
  if (dpolicy != nullptr) {  // ∂h_k/∂π_0 = 1 = −∂h_k/∂π_k (S-DPO likewise)
    T chosen = 0;
    for (int k = 1; k < K; ++k) chosen -= dpolicy[k];
    dpolicy[0] = chosen;
  }
  if (metrics != nullptr) {
    const T chosen_reward = beta * (policy[0] - reference[0]);
    T rejected_reward = 0;
    for (int k = 1; k < K; ++k) rejected_reward += beta * (policy[k] - reference[k]);
    rejected_reward /= T(rejected);
    metrics[kDpoRewardChosen] = chosen_reward;
    metrics[kDpoRewardRejected] = rejected_reward;
    metrics[kDpoMargin] = chosen_reward - rejected_reward;
    metrics[kDpoAccuracy] = chosen_reward > rejected_reward ? T(1) : T(0);
  }
  return loss;
}

// ---- The op over N pairs ------------------------------------------------------------------------
namespace cpu {
// losses [N]; dpolicy [N, K] and metrics [N, kDpoNumMetrics] overwritten when non-null; policy and
// reference [N, K].
template <typename T>
void dpo_loss(T* losses, T* dpolicy, T* metrics, const T* policy, const T* reference, int N, int K,
              DpoParams params, T loss_scale);
}  // namespace cpu

namespace cuda {
void dpo_loss(const Context& ctx, float* losses, float* dpolicy, float* metrics,
              const float* policy, const float* reference, int N, int K, DpoParams params,
              float loss_scale);
}  // namespace cuda

template <typename T>
void dpo_loss(const Context& ctx, T* losses, T* dpolicy, T* metrics, const T* policy,
              const T* reference, int N, int K, DpoParams params, T loss_scale) {
  RECFORGE_CHECK(N >= 0 && K >= 2, "dpo_loss: bad shape N=", N, " K=", K,
                 " (K counts the chosen candidate and at least one rejected one)");
  check_dpo_params(params);
  dispatch<std::is_same_v<T, float>>(
      ctx, "dpo_loss",
      [&](const auto& on) {
        cuda::dpo_loss(on, losses, dpolicy, metrics, policy, reference, N, K, params, loss_scale);
      },
      [&] {
        cpu::dpo_loss(losses, dpolicy, metrics, policy, reference, N, K, params, loss_scale);
      });
}

}  // namespace recforge
