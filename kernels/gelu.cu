// GELU on the GPU: one grid-stride loop per direction; the per-element math is gelu / gelu_grad
// from kernels/math.h, shared with the CPU backend. bf16 elements are widened on load and the
// output rounded once on store (load_as_float / store_as, kernels/bf16.h).

#include "kernels/cuda_common.cuh"
#include "kernels/gelu.h"

namespace recforge::cuda {
namespace {

// out may alias inp: each element is read, then written, by the same thread.
template <typename A>
__global__ void gelu_forward_kernel(A* out, const A* inp, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    out[i] = store_as<A>(gelu(load_as_float(inp[i])));
  }
}

// dinp may alias dout (same type).
template <typename Dinp, typename In, typename Dout>
__global__ void gelu_backward_kernel(Dinp* dinp, const In* inp, const Dout* dout, int64_t n) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    dinp[i] = store_as<Dinp>(gelu_grad(load_as_float(inp[i])) * load_as_float(dout[i]));
  }
}

}  // namespace

template <typename A>
void gelu_forward(const Context& ctx, A* out, const A* inp, int64_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, inp, n);
  CUDA_CHECK_LAUNCH();
}

template <typename Dinp, typename In, typename Dout>
void gelu_backward(const Context& ctx, Dinp* dinp, const In* inp, const Dout* dout, int64_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      dinp, inp, dout, n);
  CUDA_CHECK_LAUNCH();
}

template void gelu_forward<float>(const Context&, float*, const float*, int64_t);
template void gelu_forward<bf16>(const Context&, bf16*, const bf16*, int64_t);
template void gelu_backward<float, float, float>(const Context&, float*, const float*, const float*,
                                                 int64_t);
template void gelu_backward<bf16, bf16, float>(const Context&, bf16*, const bf16*, const float*,
                                               int64_t);

}  // namespace recforge::cuda
