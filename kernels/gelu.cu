// GELU on the GPU: one grid-stride loop per direction; the per-element math is gelu / gelu_grad
// from kernels/math.h, shared with the CPU backend.

#include "kernels/cuda_common.cuh"
#include "kernels/gelu.h"

namespace recforge::cuda {
namespace {

// out may alias inp: each element is read, then written, by the same thread.
__global__ void gelu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) out[i] = gelu(inp[i]);
}

// dinp may alias dout.
__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    dinp[i] = gelu_grad(inp[i]) * dout[i];
  }
}

}  // namespace

void gelu_forward(const Context& ctx, float* out, const float* inp, int64_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, inp, n);
  CUDA_CHECK_LAUNCH();
}

void gelu_backward(const Context& ctx, float* dinp, const float* inp, const float* dout,
                   int64_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
