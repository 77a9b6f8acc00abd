// AdamW on the GPU: one grid-stride loop over the flat parameter buffer applying adamw_element
// (kernels/math.h), the CPU backend's update. The bias corrections 1 − βᵗ come from adamw_step on
// the host, the same function the CPU backend uses, and are passed by value.

#include "kernels/adamw.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

// Elements [0, num_decayed) get weight decay, the rest do not.
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, int64_t n,
                             int64_t num_decayed, AdamWStep step, float grad_scale) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    adamw_element(params + i, m + i, v + i, grads[i] * grad_scale,
                  i < num_decayed ? step.weight_decay : 0.0f, step);
  }
}

}  // namespace

void adamw_update(const Context& ctx, float* params, const float* grads, float* m, float* v,
                  int64_t n, int64_t num_decayed, const AdamWConfig& config, int step,
                  float grad_scale) {
  if (n == 0) return;
  const AdamWStep s = adamw_step(config, step);
  adamw_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      params, grads, m, v, n, num_decayed, s, grad_scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
