// Layer normalization on the GPU.
//
// Forward (and the fused residual forward): one warp per row, kRowsPerBlock rows per block. Lane l
// owns the channels l, l + 32, ...; the row is read three times (sum, centered sum of squares,
// normalize), the repeats hitting L1/L2. Two passes for the variance avoid the cancellation of
// E[x²] − E[x]². The output is stored as Out ∈ {float, bf16} (rounded once); everything else is
// fp32.
//
// Backward, the forward's derivative with x̂ = (x − mean)·rstd and g = dout ⊙ weight:
//   dinp += rstd · (g − mean_c(g) − x̂ · mean_c(g ⊙ x̂))   one warp per row (two row reductions)
//   dweight += Σ_n dout ⊙ x̂,  dbias += Σ_n dout         column sums, computed deterministically:
// stage 1 splits the rows into chunks of kRowsPerChunk; block (column tile, chunk) has
// kColumnTile × kRowLanes threads, lane x owning column c and lane y summing the chunk's rows
// y, y + kRowLanes, ... (a warp reads 32 consecutive floats of a row); the kRowLanes sums are
// folded in order into per-chunk partials in scratch. Stage 2 adds each column's partials in chunk
// order. x̂ is recomputed from the saved mean and rstd, never stored.

#include "kernels/cuda_common.cuh"
#include "kernels/layernorm.h"

namespace recforge::cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // warps per block in the row kernels
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr int kRowsPerChunk = 256;

__device__ __forceinline__ int warp_row() {
  return blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
}

// Normalizes row x into out and returns (mean, rstd) to every lane.
template <typename Out>
__device__ float2 normalize_row(Out* out, const float* x, const float* weight, const float* bias,
                                int C) {
  const int lane = threadIdx.x % kWarpSize;
  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) sum += x[c];
  const float mean = warp_reduce(sum, Sum{}) / C;
  float squares = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) squares += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / sqrtf(warp_reduce(squares, Sum{}) / C + kLayerNormEps);
  for (int c = lane; c < C; c += kWarpSize) {
    out[c] = store_as<Out>((x[c] - mean) * rstd * weight[c] + bias[c]);
  }
  return make_float2(mean, rstd);
}

template <typename Out>
__global__ void layernorm_forward_kernel(Out* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int N, int C) {
  const int n = warp_row();
  if (n >= N) return;
  const int64_t row = static_cast<int64_t>(n) * C;
  float2 stats = normalize_row(out + row, inp + row, weight, bias, C);
  if (threadIdx.x % kWarpSize == 0) {
    mean[n] = stats.x;
    rstd[n] = stats.y;
  }
}

// residual = a + b, then layernorm(residual). Each lane later reads back only the channels it
// wrote, so no synchronization is needed between the two steps.
template <typename Out>
__global__ void residual_layernorm_forward_kernel(float* residual, Out* out, float* mean,
                                                  float* rstd, const float* a, const float* b,
                                                  const float* weight, const float* bias, int N,
                                                  int C) {
  const int n = warp_row();
  if (n >= N) return;
  const int64_t row = static_cast<int64_t>(n) * C;
  for (int c = threadIdx.x % kWarpSize; c < C; c += kWarpSize) {
    residual[row + c] = a[row + c] + b[row + c];
  }
  float2 stats = normalize_row(out + row, residual + row, weight, bias, C);
  if (threadIdx.x % kWarpSize == 0) {
    mean[n] = stats.x;
    rstd[n] = stats.y;
  }
}

// dinp[n] += rstd · (g − mean_c(g) − x̂ · mean_c(g ⊙ x̂)), one warp per row.
__global__ void layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp,
                                      const float* weight, const float* mean, const float* rstd,
                                      int N, int C) {
  const int n = warp_row();
  if (n >= N) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = static_cast<int64_t>(n) * C;
  const float mu = mean[n], rs = rstd[n];
  float g_sum = 0.0f, gx_sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float xhat = (inp[row + c] - mu) * rs;
    const float g = dout[row + c] * weight[c];
    g_sum += g;
    gx_sum += g * xhat;
  }
  const float g_mean = warp_reduce(g_sum, Sum{}) / C;
  const float gx_mean = warp_reduce(gx_sum, Sum{}) / C;
  for (int c = lane; c < C; c += kWarpSize) {
    const float xhat = (inp[row + c] - mu) * rs;
    const float g = dout[row + c] * weight[c];
    dinp[row + c] += rs * (g - g_mean - xhat * gx_mean);
  }
}

// Stage 1: dweight_partials[chunk, c] = Σ_{n in chunk} dout ⊙ x̂, dbias_partials[chunk, c] =
// Σ_{n in chunk} dout.
__global__ void column_partials_kernel(float* dweight_partials, float* dbias_partials,
                                       const float* dout, const float* inp, const float* mean,
                                       const float* rstd, int N, int C) {
  __shared__ float weight_sums[kRowLanes][kColumnTile];
  __shared__ float bias_sums[kRowLanes][kColumnTile];
  const int c = blockIdx.x * kColumnTile + threadIdx.x;
  const int row_begin = blockIdx.y * kRowsPerChunk;
  const int row_end = min(row_begin + kRowsPerChunk, N);
  float weight_sum = 0.0f, bias_sum = 0.0f;
  if (c < C) {
    for (int n = row_begin + threadIdx.y; n < row_end; n += kRowLanes) {
      const int64_t at = static_cast<int64_t>(n) * C + c;
      const float xhat = (inp[at] - mean[n]) * rstd[n];
      weight_sum += dout[at] * xhat;
      bias_sum += dout[at];
    }
  }
  weight_sums[threadIdx.y][threadIdx.x] = weight_sum;
  bias_sums[threadIdx.y][threadIdx.x] = bias_sum;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float weight_total = 0.0f, bias_total = 0.0f;
    for (int lane = 0; lane < kRowLanes; ++lane) {
      weight_total += weight_sums[lane][threadIdx.x];
      bias_total += bias_sums[lane][threadIdx.x];
    }
    const int64_t at = static_cast<int64_t>(blockIdx.y) * C + c;
    dweight_partials[at] = weight_total;
    dbias_partials[at] = bias_total;
  }
}

// Stage 2: dweight[c] += Σ_chunk dweight_partials[chunk, c] in chunk order; likewise dbias. Either
// output may be null.
__global__ void add_column_partials_kernel(float* dweight, float* dbias,
                                           const float* dweight_partials,
                                           const float* dbias_partials, int num_chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float weight_total = 0.0f, bias_total = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    weight_total += dweight_partials[static_cast<int64_t>(chunk) * C + c];
    bias_total += dbias_partials[static_cast<int64_t>(chunk) * C + c];
  }
  if (dweight) dweight[c] += weight_total;
  if (dbias) dbias[c] += bias_total;
}

unsigned int row_blocks(int N) { return ceil_div(N, kRowsPerBlock); }

}  // namespace

template <typename Out>
void layernorm_forward(const Context& ctx, Out* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
  if (N == 0) return;
  layernorm_forward_kernel<Out><<<row_blocks(N), kRowsPerBlock * kWarpSize, 0, stream_of(ctx)>>>(
      out, mean, rstd, inp, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

template <typename Out>
void residual_layernorm_forward(const Context& ctx, float* residual, Out* out, float* mean,
                                float* rstd, const float* a, const float* b, const float* weight,
                                const float* bias, int N, int C) {
  if (N == 0) return;
  residual_layernorm_forward_kernel<Out>
      <<<row_blocks(N), kRowsPerBlock * kWarpSize, 0, stream_of(ctx)>>>(residual, out, mean, rstd,
                                                                        a, b, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

#define RECFORGE_INSTANTIATE(Out)                                                             \
  template void layernorm_forward<Out>(const Context&, Out*, float*, float*, const float*,    \
                                       const float*, const float*, int, int);                 \
  template void residual_layernorm_forward<Out>(const Context&, float*, Out*, float*, float*, \
                                                const float*, const float*, const float*,     \
                                                const float*, int, int);
RECFORGE_INSTANTIATE(float)
RECFORGE_INSTANTIATE(bf16)
#undef RECFORGE_INSTANTIATE

void layernorm_backward(const Context& ctx, float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
  if (N == 0) return;
  cudaStream_t stream = stream_of(ctx);
  layernorm_dinp_kernel<<<row_blocks(N), kRowsPerBlock * kWarpSize, 0, stream>>>(
      dinp, dout, inp, weight, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  if (dweight == nullptr && dbias == nullptr) return;

  const int num_chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
  RECFORGE_CHECK(num_chunks <= 65535, "layernorm_backward: N=", N, " rows exceed the grid");
  const size_t partial_floats = static_cast<size_t>(num_chunks) * C;
  auto* dweight_partials = static_cast<float*>(scratch(ctx, 2 * partial_floats * sizeof(float)));
  float* dbias_partials = dweight_partials + partial_floats;
  column_partials_kernel<<<dim3(ceil_div(C, kColumnTile), num_chunks), dim3(kColumnTile, kRowLanes),
                           0, stream>>>(dweight_partials, dbias_partials, dout, inp, mean, rstd, N,
                                        C);
  CUDA_CHECK_LAUNCH();
  add_column_partials_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, dbias, dweight_partials,
                                                                   dbias_partials, num_chunks, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace recforge::cuda
