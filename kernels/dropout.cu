// Inverted dropout on the GPU: a grid-stride loop that regenerates element i's Philox multiplier
// from (seed, stream, i) with dropout_multiplier (kernels/math.h), the same function the CPU
// backend calls, so a seed gives the same mask, bit for bit, on both devices. The backward is the
// forward applied to the gradient: the same mask and the same 1 / (1 − p) scale.

#include "kernels/cuda_common.cuh"
#include "kernels/dropout.h"

namespace recforge::cuda {
namespace {

// out[i] = inp[i] · keep(i) / (1 − p); out may alias inp.
__global__ void dropout_kernel(float* out, const float* inp, int64_t n, float p, uint64_t seed,
                               uint64_t stream) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    out[i] = inp[i] * dropout_multiplier(p, seed, stream, static_cast<uint64_t>(i));
  }
}

void apply_dropout(const Context& ctx, float* out, const float* inp, int64_t n,
                   const DropoutParams& params) {
  if (n == 0) return;
  dropout_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(
      out, inp, n, params.p, params.seed, params.stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void dropout_forward(const Context& ctx, float* out, const float* inp, int64_t n,
                     const DropoutParams& params) {
  apply_dropout(ctx, out, inp, n, params);
}

void dropout_backward(const Context& ctx, float* dinp, const float* dout, int64_t n,
                      const DropoutParams& params) {
  apply_dropout(ctx, dinp, dout, n, params);
}

}  // namespace recforge::cuda
