// Candidate log-probabilities under the tied output layer on the GPU, chunked over the vocabulary
// so only one [N, chunk] tile of the logits exists, in scratch (kernels/vocab_chunks.cuh):
//   forward:  pass 1 over the chunks gives stats[n] = (max, Σ exp) and lse[n] = max + log(sum);
//             then, one warp per row, logps[n, k] = hidden[n] · wte[cand[n, k]] − lse[n]
//   backward: S_n = Σ_k dlogps[n, k]; per chunk [v0, v0 + chunk):
//               tile = hidden · wte[chunk]ᵀ (recomputed)
//               tile ← −S_n · exp(tile − lse[n])                     (elementwise)
//               tile[n, cand[n, k] − v0] += dlogps[n, k]              (one thread per row, k in
//                                                                      order: repeats add up)
//               dhidden += tile · wte[chunk],  dwte[chunk] += tileᵀ · hidden
// Fixed GEMMs and fixed-order reductions only: deterministic.

#include <algorithm>
#include <cmath>

#include "kernels/candidate_logprobs.h"
#include "kernels/vocab_chunks.cuh"

namespace recforge::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;  // rows per block in the gather kernel

// lse[n] = max + log(sum); logps[n, k] = hidden[n] · wte[cand[n, k]] − lse[n] (NaN for a candidate
// outside [0, V)). One warp per row; each candidate logit is a warp-reduced dot product over C.
__global__ void gather_logprobs(float* logps, float* lse, const OnlineSoftmax* stats,
                                const float* hidden, const float* wte, const int32_t* candidates,
                                int N, int C, int V, int K) {
  const int n = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (n >= N) return;
  const int lane = threadIdx.x % kWarpSize;
  const float row_lse = stats[n].max + logf(stats[n].sum);
  const float* h = hidden + static_cast<int64_t>(n) * C;
  for (int k = 0; k < K; ++k) {
    const int32_t candidate = candidates[static_cast<int64_t>(n) * K + k];
    const bool valid = candidate >= 0 && candidate < V;
    float dot = 0.0f;
    if (valid) {
      const float* w = wte + static_cast<int64_t>(candidate) * C;
      for (int c = lane; c < C; c += kWarpSize) dot += h[c] * w[c];
    }
    dot = warp_reduce(dot, Sum{});
    if (lane == 0) logps[static_cast<int64_t>(n) * K + k] = valid ? dot - row_lse : NAN;
  }
  if (lane == 0) lse[n] = row_lse;
}

// row_total[n] = Σ_k dlogps[n, k]
__global__ void sum_rows(float* row_total, const float* dlogps, int N, int K) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float total = 0.0f;
  for (int k = 0; k < K; ++k) total += dlogps[static_cast<int64_t>(n) * K + k];
  row_total[n] = total;
}

// tile[n, v] ← −row_total[n] · exp(tile[n, v] − lse[n]). The tile holds at most 256 MB, so its
// indices fit in int.
__global__ void softmax_gradient(float* tile, const float* lse, const float* row_total, int N,
                                 int chunk) {
  const int size = N * chunk;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < size; i += gridDim.x * blockDim.x) {
    const int n = i / chunk;
    tile[i] = -row_total[n] * expf(tile[i] - lse[n]);
  }
}

// tile[n, cand[n, k] − v0] += dlogps[n, k] for the candidates inside [v0, v0 + chunk). One thread
// per row adds its K terms in order, so repeated candidates never race.
__global__ void add_candidate_gradients(float* tile, const float* dlogps, const int32_t* candidates,
                                        int N, int K, int chunk, int v0) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  for (int k = 0; k < K; ++k) {
    const int64_t i = static_cast<int64_t>(n) * K + k;
    const int32_t v = candidates[i] - v0;
    if (v >= 0 && v < chunk) tile[static_cast<int64_t>(n) * chunk + v] += dlogps[i];
  }
}

}  // namespace

void candidate_logprobs_forward(const Context& ctx, float* logps, float* lse, const float* hidden,
                                const float* wte, const int32_t* candidates, int N, int C, int V,
                                int K) {
  if (N == 0) return;
  const int max_chunk = vocab_chunk_size(N, V);
  const size_t tile_floats = static_cast<size_t>(N) * max_chunk;
  // One scratch region: [tile: N × max_chunk floats][stats: N pairs].
  auto* tile = static_cast<float*>(
      scratch(ctx, tile_floats * sizeof(float) + static_cast<size_t>(N) * sizeof(OnlineSoftmax)));
  auto* stats = reinterpret_cast<OnlineSoftmax*>(tile + tile_floats);
  vocab_softmax_stats(ctx, stats, tile, hidden, wte, N, C, V, max_chunk);
  gather_logprobs<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * kWarpSize, 0, stream_of(ctx)>>>(
      logps, lse, stats, hidden, wte, candidates, N, C, V, K);
  CUDA_CHECK_LAUNCH();
}

void candidate_logprobs_backward(const Context& ctx, float* dhidden, float* dwte,
                                 const float* dlogps, const float* lse, const float* hidden,
                                 const float* wte, const int32_t* candidates, int N, int C, int V,
                                 int K) {
  if (N == 0) return;
  const int max_chunk = vocab_chunk_size(N, V);
  const size_t tile_floats = static_cast<size_t>(N) * max_chunk;
  // One scratch region: [tile: N × max_chunk floats][row_total: N floats].
  auto* tile = static_cast<float*>(scratch(ctx, (tile_floats + N) * sizeof(float)));
  float* row_total = tile + tile_floats;
  cudaStream_t stream = stream_of(ctx);
  const unsigned int row_blocks = ceil_div(N, kElementwiseThreads);
  sum_rows<<<row_blocks, kElementwiseThreads, 0, stream>>>(row_total, dlogps, N, K);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemsetAsync(dhidden, 0, static_cast<size_t>(N) * C * sizeof(float), stream));
  for (int v0 = 0; v0 < V; v0 += max_chunk) {
    const int chunk = std::min(max_chunk, V - v0);
    const float* wte_chunk = wte + static_cast<int64_t>(v0) * C;
    logits_tile(ctx, tile, hidden, wte_chunk, N, C, chunk);
    softmax_gradient<<<grid_stride_blocks(ctx, static_cast<int64_t>(N) * chunk),
                       kElementwiseThreads, 0, stream>>>(tile, lse, row_total, N, chunk);
    CUDA_CHECK_LAUNCH();
    add_candidate_gradients<<<row_blocks, kElementwiseThreads, 0, stream>>>(
        tile, dlogps, candidates, N, K, chunk, v0);
    CUDA_CHECK_LAUNCH();
    apply_dlogits_tile(ctx, dhidden, dwte + static_cast<int64_t>(v0) * C, tile, hidden, wte_chunk,
                       N, C, chunk);
  }
}

}  // namespace recforge::cuda
