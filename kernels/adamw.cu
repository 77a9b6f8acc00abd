// AdamW on the GPU: one grid-stride loop over the flat parameter buffer applying adamw_element
// (kernels/math.h), the CPU backend's update. The bias corrections 1 − βᵗ are computed once on the
// host, with the same expression as adamw_cpu.cpp, and passed by value.

#include <cmath>

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
  AdamWStep s{config.lr,
              config.beta1,
              config.beta2,
              config.eps,
              config.weight_decay,
              1.0f - std::pow(config.beta1, static_cast<float>(step)),
              1.0f - std::pow(config.beta2, static_cast<float>(step))};
  adamw_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      params, grads, m, v, n, num_decayed, s, grad_scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
