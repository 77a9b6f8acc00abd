// SwiGLU on the GPU: one grid-stride loop per direction; the per-element math is swiglu /
// swiglu_grad from kernels/math.h, shared with the CPU backend.

#include "kernels/cuda_common.cuh"
#include "kernels/swiglu.h"

namespace recforge::cuda {
namespace {

__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    out[i] = swiglu(gate[i], up[i]);
  }
}

// Each element is read, then written, by the same thread, so the outputs may alias the inputs
// element for element.
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout,
                                       const float* gate, const float* up, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    float dg, du;
    swiglu_grad(gate[i], up[i], dout[i], &dg, &du);
    dgate[i] = dg;
    dup[i] = du;
  }
}

}  // namespace

void swiglu_forward(const Context& ctx, float* out, const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  swiglu_forward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, gate, up, n);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(const Context& ctx, float* dgate, float* dup, const float* dout,
                     const float* gate, const float* up, int64_t n) {
  if (n == 0) return;
  swiglu_backward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      dgate, dup, dout, gate, up, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
