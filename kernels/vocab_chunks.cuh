// The CUDA skeleton shared by the fused output-layer ops (kernels/classifier.h,
// kernels/candidate_logprobs.h): all N rows against one chunk of the V-row tied embedding table at
// a time, so only an [N, chunk] tile of the logits exists (in the context's scratch):
//   tile[N, chunk] = hidden · wte[v0 : v0 + chunk]ᵀ                        (logits_tile)
//   pass 1: stats[n] = the online softmax (max, Σ exp(logit − max)) of row n over all V,
//           chunk by chunk                                                 (vocab_softmax_stats)
//   pass 2: the op turns each recomputed tile into dlogits, then
//           dhidden += tile · wte_chunk,  dwte_chunk += tileᵀ · hidden      (apply_dlogits_tile)
// Every step is a fixed sequence of GEMMs and fixed-order reductions: deterministic.
#pragma once

#include "kernels/cuda_common.cuh"

namespace recforge::cuda {

// Vocabulary entries per tile: at most 8192, fewer when N rows would push the tile past 256 MB
// (rounded down to a multiple of 64 so chunk starts stay aligned for cuBLASLt).
int vocab_chunk_size(int N, int V);

// tile[N, chunk] = hidden[N, C] · wte_chunk[chunk, C]ᵀ
void logits_tile(const Context& ctx, float* tile, const float* hidden, const float* wte_chunk,
                 int N, int C, int chunk);

// stats[N] = online softmax of each row of hidden · wte[V, C]ᵀ, through tile [N, max_chunk].
void vocab_softmax_stats(const Context& ctx, OnlineSoftmax* stats, float* tile, const float* hidden,
                         const float* wte, int N, int C, int V, int max_chunk);

// dhidden[N, C] += tile[N, chunk] · wte_chunk[chunk, C];  dwte_chunk[chunk, C] += tileᵀ · hidden
// (skipped when dwte_chunk is null: a frozen output layer)
void apply_dlogits_tile(const Context& ctx, float* dhidden, float* dwte_chunk, const float* tile,
                        const float* hidden, const float* wte_chunk, int N, int C, int chunk);

}  // namespace recforge::cuda
