// Log-probabilities of K candidate tokens per row under the full softmax of the tied output layer,
// fused with it so the [N, V] logits and probabilities never exist whole (the sibling of
// kernels/classifier.h; the preference losses of kernels/dpo_loss.h consume them). With
// logits[n, v] = hidden[n, :] · wte[v, :] over the V rows of wte and
// lse_n = log Σ_v exp(logits[n, v]):
//   forward:  logps[n, k] = logits[n, cand[n, k]] − lse_n,  lse[n] saved for the backward
//   backward: given dlogps [N, K] (∂L/∂logps),
//             dlogits[n, v] = Σ_k dlogps[n, k] · ([v = cand[n, k]] − softmax_n[v])
//                           = Σ_k dlogps[n, k] · [v = cand[n, k]] − S_n · softmax_n[v],
//             S_n = Σ_k dlogps[n, k],  softmax_n[v] = exp(logits[n, v] − lse_n)
//             dhidden [N, C] = dlogits · wte (overwritten),  dwte [V, C] += dlogitsᵀ · hidden
// Each pass recomputes the logits a block at a time (the same skeleton as the classifier):
//   CPU:  panels of rows × all V (kernels/vocab_panels.h), one GEMM per panel; in the backward
//         the panel becomes dlogits in place and two GEMMs apply it.
//   CUDA: all N rows × chunks of the vocabulary (kernels/vocab_chunks.cuh): the forward streams
//         the online softmax over the chunks for lse, then gathers the K candidate logits as dot
//         products; the backward recomputes each chunk into dlogits and applies it.
// Candidates are free to repeat within a row (their gradients add up). For DPO, candidate 0 is the
// chosen item and 1..K−1 the rejected ones; the op itself treats them alike. To score a vocabulary
// sub-range (items only), pass wte offset to its first row and V = its size (candidates index
// that range).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

namespace cpu {
// logps [N, K], lse [N] written; candidates [N, K] in [0, V).
template <typename T>
void candidate_logprobs_forward(T* logps, T* lse, const T* hidden, const T* wte,
                                const int32_t* candidates, int N, int C, int V, int K);
// dhidden [N, C] overwritten, dwte [V, C] accumulated; lse [N] from the forward.
template <typename T>
void candidate_logprobs_backward(T* dhidden, T* dwte, const T* dlogps, const T* lse,
                                 const T* hidden, const T* wte, const int32_t* candidates, int N,
                                 int C, int V, int K);
}  // namespace cpu

namespace cuda {
// Candidates are not range-checked (that would need a sync): an out-of-range one gives a NaN
// log-probability in the forward and no one-hot term in the backward.
void candidate_logprobs_forward(const Context& ctx, float* logps, float* lse, const float* hidden,
                                const float* wte, const int32_t* candidates, int N, int C, int V,
                                int K);
void candidate_logprobs_backward(const Context& ctx, float* dhidden, float* dwte,
                                 const float* dlogps, const float* lse, const float* hidden,
                                 const float* wte, const int32_t* candidates, int N, int C, int V,
                                 int K);
}  // namespace cuda

inline void check_candidate_logprobs_shape(const char* op, int N, int C, int V, int K) {
  RECFORGE_CHECK(N >= 0 && C > 0 && V > 0 && K > 0, op, ": bad shape N=", N, " C=", C, " V=", V,
                 " K=", K);
}

template <typename T>
void candidate_logprobs_forward(const Context& ctx, T* logps, T* lse, const T* hidden, const T* wte,
                                const int32_t* candidates, int N, int C, int V, int K) {
  check_candidate_logprobs_shape("candidate_logprobs_forward", N, C, V, K);
  dispatch<std::is_same_v<T, float>>(
      ctx, "candidate_logprobs_forward",
      [&](const auto& on) {
        cuda::candidate_logprobs_forward(on, logps, lse, hidden, wte, candidates, N, C, V, K);
      },
      [&] { cpu::candidate_logprobs_forward(logps, lse, hidden, wte, candidates, N, C, V, K); });
}

template <typename T>
void candidate_logprobs_backward(const Context& ctx, T* dhidden, T* dwte, const T* dlogps,
                                 const T* lse, const T* hidden, const T* wte,
                                 const int32_t* candidates, int N, int C, int V, int K) {
  check_candidate_logprobs_shape("candidate_logprobs_backward", N, C, V, K);
  RECFORGE_CHECK(dhidden != nullptr && dwte != nullptr,
                 "candidate_logprobs_backward: dhidden and dwte are required");
  dispatch<std::is_same_v<T, float>>(
      ctx, "candidate_logprobs_backward",
      [&](const auto& on) {
        cuda::candidate_logprobs_backward(on, dhidden, dwte, dlogps, lse, hidden, wte, candidates,
                                          N, C, V, K);
      },
      [&] {
        cpu::candidate_logprobs_backward(dhidden, dwte, dlogps, lse, hidden, wte, candidates, N, C,
                                         V, K);
      });
}

}  // namespace recforge
