#include <algorithm>

#include "kernels/vocab_chunks.cuh"

namespace recforge::cuda {
namespace {

constexpr int kMaxChunk = 8192;                      // vocabulary entries per tile
constexpr size_t kMaxTileBytes = size_t{256} << 20;  // bound on the logits tile
constexpr int kRowThreads = 256;                     // threads per row in the statistics kernel

// stats[n] ← merge(stats[n], online softmax of tile[n, 0:chunk]); the first chunk overwrites.
__global__ void __launch_bounds__(kRowThreads)
    update_row_stats(OnlineSoftmax* stats, const float* tile, int chunk, bool first_chunk) {
  const int n = blockIdx.x;
  const float* row = tile + static_cast<int64_t>(n) * chunk;
  OnlineSoftmax state{-INFINITY, 0.0f};
  for (int v = threadIdx.x; v < chunk; v += blockDim.x) {
    state = online_softmax_merge(state, OnlineSoftmax{row[v], 1.0f});
  }
  state = block_reduce(state, MergeSoftmax{});
  if (threadIdx.x == 0) stats[n] = first_chunk ? state : online_softmax_merge(stats[n], state);
}

}  // namespace

int vocab_chunk_size(int N, int V) {
  int64_t fit = static_cast<int64_t>(kMaxTileBytes / sizeof(float)) / N;
  if (fit >= 64) fit = fit / 64 * 64;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({fit, kMaxChunk, V})));
}

void logits_tile(const Context& ctx, float* tile, const float* hidden, const float* wte_chunk,
                 int N, int C, int chunk) {
  gemm(ctx, Transpose::kNo, Transpose::kYes, N, chunk, C, hidden, C, wte_chunk, C, 0.0f, tile,
       chunk);
}

void vocab_softmax_stats(const Context& ctx, OnlineSoftmax* stats, float* tile, const float* hidden,
                         const float* wte, int N, int C, int V, int max_chunk) {
  for (int v0 = 0; v0 < V; v0 += max_chunk) {
    const int chunk = std::min(max_chunk, V - v0);
    logits_tile(ctx, tile, hidden, wte + static_cast<int64_t>(v0) * C, N, C, chunk);
    update_row_stats<<<N, kRowThreads, 0, stream_of(ctx)>>>(stats, tile, chunk, v0 == 0);
    CUDA_CHECK_LAUNCH();
  }
}

void apply_dlogits_tile(const Context& ctx, float* dhidden, float* dwte_chunk, const float* tile,
                        const float* hidden, const float* wte_chunk, int N, int C, int chunk) {
  gemm(ctx, Transpose::kNo, Transpose::kNo, N, C, chunk, tile, chunk, wte_chunk, C, 1.0f, dhidden,
       C);
  if (dwte_chunk == nullptr) return;  // a frozen output layer
  gemm(ctx, Transpose::kYes, Transpose::kNo, chunk, C, N, tile, chunk, hidden, C, 1.0f, dwte_chunk,
       C);
}

}  // namespace recforge::cuda
