// The tied output layer fused with softmax cross-entropy on the GPU, chunked over the vocabulary
// so the [N, V] logits never exist: only one [N, chunk] tile does, in scratch (the shared chunk
// loop is kernels/vocab_chunks.cuh).
//
//   pass 1, per vocabulary chunk [v0, v0 + chunk):
//     tile = hidden · wte[v0 : v0 + chunk]ᵀ                               (cuBLASLt)
//     stats[n] ← merge(stats[n], online softmax of tile[n, :])            (one block per row)
//   then lse[n] = max + log(sum) and, one warp per row, the K target logits
//     hidden[n] · wte[targets[n, k]]: losses[n] = Σ_k w_k · (lse[n] − target logit k) over the
//     valid targets, and the row's total weight W_n = Σ_k w_k over them
//   pass 2 (only when dhidden is requested), per chunk:
//     tile = hidden · wte[chunk]ᵀ again (recomputed rather than stored)
//     tile ← loss_scale · (W_n · exp(tile − lse) − Σ_k w_k · onehot(targets[n, k])), in place
//     dhidden += tile · wte[chunk],  dwte[chunk] += tileᵀ · hidden (unless dwte is null: a frozen
//     output layer)                                                         (cuBLASLt, beta = 1)
// Every step is a fixed sequence of GEMMs and fixed-order reductions: deterministic. Targets are
// not range-checked on the host (that would need a sync); an out-of-range target gives a NaN loss
// and no one-hot term instead of an out-of-bounds read.

#include <algorithm>
#include <cmath>

#include "kernels/classifier.h"
#include "kernels/vocab_chunks.cuh"

namespace recforge::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;  // rows per block in the loss kernel

// lse[n] = max + log(sum); losses[n] = Σ_k w_k · (lse[n] − hidden[n] · wte[targets[n, k]]) and
// row_weight[n] = Σ_k w_k over the targets that are not ignored (both 0 when all are). One warp
// per row; each target logit is a warp-reduced dot product over C.
__global__ void finish_losses(float* losses, float* lse, float* row_weight,
                              const OnlineSoftmax* stats, const float* hidden, const float* wte,
                              const int32_t* targets, TargetWeights weights, int N, int C, int V,
                              int32_t ignore_index) {
  const int n = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (n >= N) return;
  const int lane = threadIdx.x % kWarpSize;
  const float row_lse = stats[n].max + logf(stats[n].sum);
  const float* h = hidden + static_cast<int64_t>(n) * C;
  float loss = 0.0f, total_weight = 0.0f;
  for (int k = 0; k < weights.K; ++k) {
    const int32_t target = targets[static_cast<int64_t>(n) * weights.K + k];
    if (target == ignore_index) continue;
    const bool target_valid = target >= 0 && target < V;
    float dot = 0.0f;
    if (target_valid) {
      const float* w = wte + static_cast<int64_t>(target) * C;
      for (int c = lane; c < C; c += kWarpSize) dot += h[c] * w[c];
    }
    dot = warp_reduce(dot, Sum{});
    loss += target_valid ? weights.w[k] * (row_lse - dot) : NAN;
    total_weight += weights.w[k];
  }
  if (lane == 0) {
    lse[n] = row_lse;
    losses[n] = loss;
    row_weight[n] = total_weight;
  }
}

// tile[n, v] ← loss_scale · (W_n · exp(tile[n, v] − lse[n]) − Σ_k w_k · [v0 + v = targets[n, k]]);
// 0 on rows without a target. The tile holds at most kMaxTileBytes, so its indices fit in int.
__global__ void logits_to_dlogits(float* tile, const float* lse, const float* row_weight,
                                  const int32_t* targets, TargetWeights weights, int N, int chunk,
                                  int v0, float loss_scale, int32_t ignore_index) {
  const int size = N * chunk;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < size; i += gridDim.x * blockDim.x) {
    const int n = i / chunk, v = i % chunk;
    const float weight = row_weight[n];
    if (weight == 0.0f) {
      tile[i] = 0.0f;
      continue;
    }
    float grad = expf(tile[i] - lse[n]) * (loss_scale * weight);
    const int32_t* row_targets = targets + static_cast<int64_t>(n) * weights.K;
    for (int k = 0; k < weights.K; ++k) {
      if (row_targets[k] != ignore_index && v0 + v == row_targets[k]) {
        grad -= loss_scale * weights.w[k];
      }
    }
    tile[i] = grad;
  }
}

}  // namespace

void classifier_forward_backward(const Context& ctx, float* losses, float* dhidden, float* dwte,
                                 const float* hidden, const float* wte, const int32_t* targets,
                                 TargetWeights weights, int N, int C, int V, float loss_scale,
                                 int32_t ignore_index) {
  if (N == 0) return;
  const int max_chunk = vocab_chunk_size(N, V);
  const size_t tile_floats = static_cast<size_t>(N) * max_chunk;
  // One scratch region: [tile: N × max_chunk floats][stats: N pairs][lse: N][row_weight: N].
  auto* tile = static_cast<float*>(scratch(
      ctx, tile_floats * sizeof(float) + static_cast<size_t>(N) * (sizeof(OnlineSoftmax) + 8)));
  auto* stats = reinterpret_cast<OnlineSoftmax*>(tile + tile_floats);
  auto* lse = reinterpret_cast<float*>(stats + N);
  float* row_weight = lse + N;
  cudaStream_t stream = stream_of(ctx);

  vocab_softmax_stats(ctx, stats, tile, hidden, wte, N, C, V, max_chunk);
  finish_losses<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * kWarpSize, 0, stream>>>(
      losses, lse, row_weight, stats, hidden, wte, targets, weights, N, C, V, ignore_index);
  CUDA_CHECK_LAUNCH();
  if (dhidden == nullptr) return;

  CUDA_CHECK(cudaMemsetAsync(dhidden, 0, static_cast<size_t>(N) * C * sizeof(float), stream));
  for (int v0 = 0; v0 < V; v0 += max_chunk) {
    const int chunk = std::min(max_chunk, V - v0);
    const float* wte_chunk = wte + static_cast<int64_t>(v0) * C;
    logits_tile(ctx, tile, hidden, wte_chunk, N, C, chunk);
    logits_to_dlogits<<<grid_stride_blocks(ctx, static_cast<int64_t>(N) * chunk),
                        kElementwiseThreads, 0, stream>>>(tile, lse, row_weight, targets, weights,
                                                          N, chunk, v0, loss_scale, ignore_index);
    CUDA_CHECK_LAUNCH();
    float* dwte_chunk = dwte ? dwte + static_cast<int64_t>(v0) * C : nullptr;
    apply_dlogits_tile(ctx, dhidden, dwte_chunk, tile, hidden, wte_chunk, N, C, chunk);
  }
}

}  // namespace recforge::cuda
