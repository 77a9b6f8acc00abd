// Sum of squares and scaling on the GPU.
//
// sum_of_squares is a two-stage reduction in double with a FIXED geometry (kNormBlocks blocks of
// kNormThreads threads, whatever the device): thread t of block b sums x[i]² for
// i = b·kNormThreads + t + k·kNormBlocks·kNormThreads in increasing k, the block folds its threads
// with block_reduce (a fixed tree), and one block then folds the kNormBlocks partials the same way.
// The same gradients therefore give the same bits on every run and every GPU.

#include "kernels/cuda_common.cuh"
#include "kernels/global_norm.h"

namespace recforge::cuda {
namespace {

constexpr int kNormBlocks = 1024;
constexpr int kNormThreads = 256;

// partials[blockIdx.x] = this block's share of Σ x[i]².
__global__ void __launch_bounds__(kNormThreads)
    block_sums_of_squares(double* partials, const float* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) {
    sum += static_cast<double>(x[i]) * x[i];
  }
  sum = block_reduce(sum, Sum{});
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// total[0] = Σ partials, one thread per partial (launched with kNormBlocks threads).
__global__ void __launch_bounds__(kNormBlocks)
    fold_partials(double* total, const double* partials) {
  double sum = block_reduce(partials[threadIdx.x], Sum{});
  if (threadIdx.x == 0) total[0] = sum;
}

__global__ void scale_kernel(float* x, int64_t n, float factor) {
  for (int64_t i = grid_stride_begin(); i < n; i += grid_stride_step()) x[i] *= factor;
}

}  // namespace

double sum_of_squares(const Context& ctx, const float* x, int64_t n) {
  if (n == 0) return 0.0;
  auto* partials = static_cast<double*>(scratch(ctx, (kNormBlocks + 1) * sizeof(double)));
  double* total = partials + kNormBlocks;
  cudaStream_t stream = stream_of(ctx);
  block_sums_of_squares<<<kNormBlocks, kNormThreads, 0, stream>>>(partials, x, n);
  CUDA_CHECK_LAUNCH();
  fold_partials<<<1, kNormBlocks, 0, stream>>>(total, partials);
  CUDA_CHECK_LAUNCH();
  double result = 0.0;
  CUDA_CHECK(cudaMemcpyAsync(&result, total, sizeof(double), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return result;
}

void scale(const Context& ctx, float* x, int64_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<grid_stride_blocks(ctx, n), kElementwiseThreads, 0, stream_of(ctx)>>>(x, n,
                                                                                       factor);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
