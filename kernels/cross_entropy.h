// Softmax cross-entropy over given logits [N, V], loss and logit gradient in one kernel:
//   losses[n]     = logsumexp(logits[n]) − logits[n, targets[n]]          (0 where ignored)
//   dlogits[n, v] = (softmax(logits[n])[v] − [v = targets[n]]) · loss_scale (0 rows where ignored)
// Rows whose target equals `ignore_index` count for nothing; with loss_scale = 1 / (number of
// counted rows) the gradient is that of the mean loss over counted targets.
// For the model's output layer see classifier.h, which never materializes the logits.
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>

#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

inline constexpr int32_t kIgnoreIndex = -1;

// Number of targets that are not `ignore_index` (host array).
int64_t count_targets(std::span<const int32_t> targets, int32_t ignore_index = kIgnoreIndex);

namespace cpu {
// dlogits may alias logits, or be null to compute the losses only.
template <typename T>
void softmax_cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N,
                           int V, T loss_scale, int32_t ignore_index);
}  // namespace cpu

namespace cuda {
void softmax_cross_entropy(const Context& ctx, float* losses, float* dlogits, const float* logits,
                           const int32_t* targets, int N, int V, float loss_scale,
                           int32_t ignore_index);
}  // namespace cuda

template <typename T>
void softmax_cross_entropy(const Context& ctx, T* losses, T* dlogits, const T* logits,
                           const int32_t* targets, int N, int V, T loss_scale,
                           int32_t ignore_index = kIgnoreIndex) {
  RECFORGE_CHECK(N >= 0 && V > 0, "softmax_cross_entropy: bad shape N=", N, " V=", V);
  dispatch<std::is_same_v<T, float>>(
      ctx, "softmax_cross_entropy",
      [&](const auto& on) {
        cuda::softmax_cross_entropy(on, losses, dlogits, logits, targets, N, V, loss_scale,
                                    ignore_index);
      },
      [&] {
        cpu::softmax_cross_entropy(losses, dlogits, logits, targets, N, V, loss_scale,
                                   ignore_index);
      });
}

}  // namespace recforge
