// y += x: a grid-stride loop.

#include "kernels/add.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

__global__ void add_into_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) y[i] += x[i];
}

}  // namespace

void add_into(const Context& ctx, float* y, const float* x, int64_t n) {
  if (n == 0) return;
  add_into_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(y, x, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
