// The DPO losses on the GPU: one thread per pair runs the shared per-pair math (dpo_pair_loss in
// kernels/dpo_loss.h), so the CPU tests cover the arithmetic and only the indexing is CUDA's.

#include "kernels/cuda_common.cuh"
#include "kernels/dpo_loss.h"

namespace recforge::cuda {
namespace {

__global__ void dpo_pairs(float* losses, float* dpolicy, float* metrics, const float* policy,
                          const float* reference, int N, int K, DpoParams params,
                          float loss_scale) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int64_t row = static_cast<int64_t>(n) * K;
  losses[n] = dpo_pair_loss(dpolicy ? dpolicy + row : nullptr,
                            metrics ? metrics + static_cast<int64_t>(n) * kDpoNumMetrics : nullptr,
                            policy + row, reference + row, K, params, loss_scale);
}

}  // namespace

void dpo_loss(const Context& ctx, float* losses, float* dpolicy, float* metrics,
              const float* policy, const float* reference, int N, int K, DpoParams params,
              float loss_scale) {
  if (N == 0) return;
  dpo_pairs<<<ceil_div(N, kElementwiseThreads), kElementwiseThreads, 0, stream_of(ctx)>>>(
      losses, dpolicy, metrics, policy, reference, N, K, params, loss_scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
