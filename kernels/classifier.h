// The model's output layer fused with softmax cross-entropy, chunked so the logits never exist
// whole. The output weights are the (tied) embedding table: logits[n, v] = hidden[n, :] · wte[v,
// :]. For V = 12k items and N = 6400 tokens the logits alone would be 310 MB, and an unfused step
// reads and writes them several times; here only a small block of them exists at a time:
//   CPU:  a panel of R rows × all V logits per thread (R chosen so the panel stays in cache, at
//         most 128): one GEMM fills it, two passes over each row give lse and turn the panel into
//         dlogits = (softmax − onehot) · loss_scale in place, and two GEMMs apply it at once:
//         dhidden[rows] = dlogits · wte,  dwte += dlogitsᵀ · hidden[rows].
//   CUDA: all N rows × a chunk of the vocabulary: pass 1 streams over the chunks with the online
//         softmax (max, Σ exp) to get lse; pass 2 recomputes each chunk into dlogits and applies
//         it.
// losses[n] = lse[n] − logits[n, targets[n]]. Targets equal to ignore_index count for nothing
// (loss 0, no gradient). To score a vocabulary sub-range (items only), pass wte offset to its
// first row and V = its size.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/cross_entropy.h"

namespace recforge {

namespace cpu {
// losses [N]; dhidden [N, C] overwritten; dwte [V, C] accumulated. dhidden and dwte may both be
// null to compute the losses only (one pass).
template <typename T>
void classifier_forward_backward(T* losses, T* dhidden, T* dwte, const T* hidden, const T* wte,
                                 const int32_t* targets, int N, int C, int V, T loss_scale,
                                 int32_t ignore_index);
}  // namespace cpu

namespace cuda {
void classifier_forward_backward(const Context& ctx, float* losses, float* dhidden, float* dwte,
                                 const float* hidden, const float* wte, const int32_t* targets,
                                 int N, int C, int V, float loss_scale, int32_t ignore_index);
}  // namespace cuda

template <typename T>
void classifier_forward_backward(const Context& ctx, T* losses, T* dhidden, T* dwte,
                                 const T* hidden, const T* wte, const int32_t* targets, int N,
                                 int C, int V, T loss_scale, int32_t ignore_index = kIgnoreIndex) {
  RECFORGE_CHECK(N >= 0 && C > 0 && V > 0, "classifier_forward_backward: bad shape N=", N, " C=", C,
                 " V=", V);
  RECFORGE_CHECK((dhidden == nullptr) == (dwte == nullptr),
                 "classifier_forward_backward: dhidden and dwte are computed together");
  if constexpr (kWithCuda && std::is_same_v<T, float>) {
    if (ctx.on_cuda()) {
      return cuda::classifier_forward_backward(ctx, losses, dhidden, dwte, hidden, wte, targets, N,
                                               C, V, loss_scale, ignore_index);
    }
  }
  require_cpu(ctx, "classifier_forward_backward");
  cpu::classifier_forward_backward(losses, dhidden, dwte, hidden, wte, targets, N, C, V, loss_scale,
                                   ignore_index);
}

}  // namespace recforge
