// Softmax cross-entropy over materialized logits on the GPU: one block per row.
//
// Each thread folds the row's logits v = t, t + blockDim, ... into an online softmax pair
// (running max, Σ exp(x − max)), kernels/math.h; block_reduce merges the pairs along a fixed tree,
// so lse = max + log(sum) is reproducible. Then each thread writes the gradient of the elements it
// read:
//   dlogits[v] = exp(logits[v] − lse) · loss_scale − [v = target] · loss_scale
// dlogits may alias logits: every read of the row (the reduction, and the target logit) happens
// before the reduction's barrier, every write after it, and each element is rewritten only by the
// thread that reads it.
// A target outside [0, V) (other than ignore_index) cannot be checked on the host without a sync;
// its row gets a NaN loss instead of an out-of-bounds read.

#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads)
    softmax_cross_entropy_kernel(float* losses, float* dlogits, const float* logits,
                                 const int32_t* targets, int V, float loss_scale,
                                 int32_t ignore_index) {
  const int n = blockIdx.x;
  const int64_t row = static_cast<int64_t>(n) * V;
  const int32_t target = targets[n];
  if (target == ignore_index) {
    if (threadIdx.x == 0) losses[n] = 0.0f;
    if (dlogits) {
      for (int v = threadIdx.x; v < V; v += blockDim.x) dlogits[row + v] = 0.0f;
    }
    return;
  }
  const bool target_valid = target >= 0 && target < V;
  const float target_logit = target_valid ? logits[row + target] : NAN;
  OnlineSoftmax state{-INFINITY, 0.0f};
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    state = online_softmax_merge(state, OnlineSoftmax{logits[row + v], 1.0f});
  }
  state = block_reduce(state, MergeSoftmax{});
  const float lse = state.max + logf(state.sum);
  if (threadIdx.x == 0) losses[n] = lse - target_logit;
  if (dlogits == nullptr) return;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float grad = expf(logits[row + v] - lse) * loss_scale;
    if (v == target) grad -= loss_scale;
    dlogits[row + v] = grad;
  }
}

}  // namespace

void softmax_cross_entropy(const Context& ctx, float* losses, float* dlogits, const float* logits,
                           const int32_t* targets, int N, int V, float loss_scale,
                           int32_t ignore_index) {
  if (N == 0) return;
  softmax_cross_entropy_kernel<<<N, kThreads, 0, stream_of(ctx)>>>(losses, dlogits, logits, targets,
                                                                   V, loss_scale, ignore_index);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
