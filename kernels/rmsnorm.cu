// RMS normalization on the GPU.
//
// Forward (and the fused residual forward): one block of kThreads per row. Thread t owns the
// channels t, t + kThreads, ...; its partial sum of squares goes through block_reduce (warp
// butterflies, then the warp results folded in warp order: a fixed tree), so the statistics are
// the same bits on every run. The row is read twice (sum of squares, normalize), the repeat hitting
// L1/L2.
//
// Backward, with x̂ = x·rstd and g = dout ⊙ weight:
//   dinp += rstd · (g − x̂ · mean_c(g ⊙ x̂))   one block per row, one block reduction
//   dweight += Σ_n dout ⊙ x̂                  column sums, computed deterministically like
// layernorm.cu's: stage 1 splits the rows into chunks of kRowsPerChunk; block (column tile, chunk)
// has kColumnTile × kRowLanes threads, lane x owning column c and lane y summing the chunk's rows
// y, y + kRowLanes, ...; the kRowLanes sums are folded in order into per-chunk partials in scratch.
// Stage 2 adds each column's partials in chunk order. x̂ is recomputed from the saved rstd.

#include "kernels/cuda_common.cuh"
#include "kernels/rmsnorm.h"

namespace recforge::cuda {
namespace {

constexpr int kThreads = 256;  // per row in the row kernels
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr int kRowsPerChunk = 256;

// out = x · rstd · weight for row x (all threads of the block); returns rstd to every thread.
__device__ float normalize_row(float* out, const float* x, const float* weight, int C, float eps) {
  float squares = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) squares += x[c] * x[c];
  const float rstd = 1.0f / sqrtf(block_reduce(squares, Sum{}) / C + eps);
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[c] = x[c] * rstd * weight[c];
  return rstd;
}

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp,
                                       const float* weight, int C, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * C;
  const float rs = normalize_row(out + row, inp + row, weight, C, eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

// residual = a + b, then rmsnorm(residual). Each thread later reads back only the channels it
// wrote, so no synchronization is needed between the two steps.
__global__ void residual_rmsnorm_forward_kernel(float* residual, float* out, float* rstd,
                                                const float* a, const float* b, const float* weight,
                                                int C, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) residual[row + c] = a[row + c] + b[row + c];
  const float rs = normalize_row(out + row, residual + row, weight, C, eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

// dinp[n] += rstd · (g − x̂ · mean_c(g ⊙ x̂)), one block per row.
__global__ void rmsnorm_dinp_kernel(float* dinp, const float* dout, const float* inp,
                                    const float* weight, const float* rstd, int C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * C;
  const float rs = rstd[blockIdx.x];
  float gx_sum = 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    gx_sum += dout[row + c] * weight[c] * (inp[row + c] * rs);
  }
  const float gx_mean = block_reduce(gx_sum, Sum{}) / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xhat = inp[row + c] * rs;
    dinp[row + c] += rs * (dout[row + c] * weight[c] - xhat * gx_mean);
  }
}

// Stage 1: partials[chunk, c] = Σ_{n in chunk} dout ⊙ x̂.
__global__ void column_partials_kernel(float* partials, const float* dout, const float* inp,
                                       const float* rstd, int N, int C) {
  __shared__ float sums[kRowLanes][kColumnTile];
  const int c = blockIdx.x * kColumnTile + threadIdx.x;
  const int row_begin = blockIdx.y * kRowsPerChunk;
  const int row_end = min(row_begin + kRowsPerChunk, N);
  float sum = 0.0f;
  if (c < C) {
    for (int n = row_begin + threadIdx.y; n < row_end; n += kRowLanes) {
      const int64_t at = static_cast<int64_t>(n) * C + c;
      sum += dout[at] * (inp[at] * rstd[n]);
    }
  }
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.0f;
    for (int lane = 0; lane < kRowLanes; ++lane) total += sums[lane][threadIdx.x];
    partials[static_cast<int64_t>(blockIdx.y) * C + c] = total;
  }
}

// Stage 2: dweight[c] += Σ_chunk partials[chunk, c] in chunk order.
__global__ void add_column_partials_kernel(float* dweight, const float* partials, int num_chunks,
                                           int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float total = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    total += partials[static_cast<int64_t>(chunk) * C + c];
  }
  dweight[c] += total;
}

}  // namespace

void rmsnorm_forward(const Context& ctx, float* out, float* rstd, const float* inp,
                     const float* weight, int N, int C, float eps) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<N, kThreads, 0, stream_of(ctx)>>>(out, rstd, inp, weight, C, eps);
  CUDA_CHECK_LAUNCH();
}

void residual_rmsnorm_forward(const Context& ctx, float* residual, float* out, float* rstd,
                              const float* a, const float* b, const float* weight, int N, int C,
                              float eps) {
  if (N == 0) return;
  residual_rmsnorm_forward_kernel<<<N, kThreads, 0, stream_of(ctx)>>>(residual, out, rstd, a, b,
                                                                      weight, C, eps);
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(const Context& ctx, float* dinp, float* dweight, const float* dout,
                      const float* inp, const float* weight, const float* rstd, int N, int C) {
  if (N == 0) return;
  cudaStream_t stream = stream_of(ctx);
  rmsnorm_dinp_kernel<<<N, kThreads, 0, stream>>>(dinp, dout, inp, weight, rstd, C);
  CUDA_CHECK_LAUNCH();
  if (dweight == nullptr) return;

  const int num_chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
  RECFORGE_CHECK(num_chunks <= 65535, "rmsnorm_backward: N=", N, " rows exceed the grid");
  auto* partials =
      static_cast<float*>(scratch(ctx, static_cast<size_t>(num_chunks) * C * sizeof(float)));
  column_partials_kernel<<<dim3(ceil_div(C, kColumnTile), num_chunks), dim3(kColumnTile, kRowLanes),
                           0, stream>>>(partials, dout, inp, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  add_column_partials_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, partials, num_chunks,
                                                                   C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
