// Sampled softmax with the logQ correction on the GPU (math in kernels/sampled_softmax.h).
//
//   E[P, C] = wte[negatives]                                   (gather, NaN rows if out of range)
//   per chunk of R rows (the [R, P] tile bounded by kMaxTileBytes):
//     tile = hidden[rows] · Eᵀ                                  (cuBLASLt)
//     one block per row: s_pos, the corrected negative logits, lse by the online softmax, the
//       loss, and with a gradient tile ← dS / τ and dpos[n] = dS_pos / τ in place
//     dhidden[rows] = tile · E + dpos ⊗ e_p                    (cuBLASLt, then a row update)
//     dE (+)= tileᵀ · hidden[rows]                             (cuBLASLt, beta = 1 after the first)
//   table gradient: the N + P candidate keys (positives, then negatives) are sorted stably with
//   their ids (CUB radix sort); the first entry of each run of equal keys owns that table row and
//   adds its contributions in ascending id order: dpos[n] · hidden[n] for a positive row n, dE[j]
//   for negative j. The same order as the CPU backend, and no atomics: deterministic.

#include <algorithm>
#include <cmath>
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda_common.cuh"
#include "kernels/sampled_softmax.h"

namespace recforge::cuda {
namespace {

constexpr size_t kMaxTileBytes = size_t{64} << 20;  // bound on the [R, P] logits tile
constexpr int kRowThreads = 256;                    // threads per row in the softmax kernel
constexpr size_t kAlignment = 256;                  // of every scratch array

// Threads per block along the channels: C rounded up to whole warps, at most 256.
int channel_threads(int C) {
  return std::min(256, static_cast<int>(ceil_div(C, kWarpSize)) * kWarpSize);
}

// E[j, :] = wte[negatives[j], :], NaN for an out-of-range negative.
__global__ void gather_negatives(float* E, const float* wte, const int32_t* negatives, int C,
                                 int V) {
  const int j = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int32_t row = negatives[j];
  E[static_cast<int64_t>(j) * C + c] =
      row >= 0 && row < V ? wte[static_cast<int64_t>(row) * C + c] : NAN;
}

// Row row0 + blockIdx.x: tile row [P] holds h · e_j on entry. Writes the loss and, with
// `backward`, dS / τ into the tile row and dS_pos / τ into dpos (zeros on an ignored row).
__global__ void __launch_bounds__(kRowThreads)
    softmax_rows(float* losses, float* dpos, float* tile, SampledSoftmaxInputs<float> in,
                 int64_t row0, float scale, bool backward) {
  const int64_t n = row0 + blockIdx.x;
  float* row = tile + static_cast<int64_t>(blockIdx.x) * in.P;
  const int32_t positive = in.positives[n];
  if (positive == in.ignore_index) {
    if (threadIdx.x == 0) losses[n] = 0.0f;
    if (backward) {
      for (int j = threadIdx.x; j < in.P; j += blockDim.x) row[j] = 0.0f;
      if (threadIdx.x == 0) dpos[n] = 0.0f;
    }
    return;
  }
  const float inv_temperature = 1.0f / in.temperature;
  const bool positive_valid = positive >= 0 && positive < in.V;
  float partial = 0.0f;
  if (positive_valid) {
    const float* h = in.hidden + n * in.C;
    const float* e = in.wte + static_cast<int64_t>(positive) * in.C;
    for (int c = threadIdx.x; c < in.C; c += blockDim.x) partial += h[c] * e[c];
  }
  const float dot = block_reduce(partial, Sum{});
  const float s_pos = positive_valid ? dot * inv_temperature - in.log_q_positive[n] : NAN;

  OnlineSoftmax state{-INFINITY, 0.0f};
  for (int j = threadIdx.x; j < in.P; j += blockDim.x) {
    row[j] = sampled_negative_logit(row[j] * inv_temperature, in.log_q_negative[j], in.negatives[j],
                                    positive);
    if (row[j] != -INFINITY) state = online_softmax_merge(state, OnlineSoftmax{row[j], 1.0f});
  }
  state = online_softmax_merge(block_reduce(state, MergeSoftmax{}), OnlineSoftmax{s_pos, 1.0f});
  const float lse = state.max + logf(state.sum);
  if (threadIdx.x == 0) losses[n] = lse - s_pos;
  if (!backward) return;
  for (int j = threadIdx.x; j < in.P; j += blockDim.x) {
    row[j] = sampled_logit_gradient(row[j], lse, scale, false);
  }
  if (threadIdx.x == 0) dpos[n] = sampled_logit_gradient(s_pos, lse, scale, true);
}

// dhidden[n, :] += dpos[n] · wte[positives[n], :] for the rows [row0, row0 + rows) with a positive
// in range.
__global__ void add_positive_rows(float* dhidden, const float* dpos, SampledSoftmaxInputs<float> in,
                                  int64_t row0, int rows) {
  const int64_t size = static_cast<int64_t>(rows) * in.C;
  for (int64_t i = grid_stride_begin(); i < size; i += grid_stride_step()) {
    const int64_t n = row0 + i / in.C;
    const int c = static_cast<int>(i % in.C);
    const int32_t positive = in.positives[n];
    if (positive == in.ignore_index || positive < 0 || positive >= in.V) continue;
    dhidden[n * in.C + c] += dpos[n] * in.wte[static_cast<int64_t>(positive) * in.C + c];
  }
}

// keys[i] = the table row candidate i touches (positives at 0..N−1, negatives at N..N+P−1; V for
// an ignored or out-of-range one), ids[i] = i.
__global__ void candidate_keys(int32_t* keys, int32_t* ids, SampledSoftmaxInputs<float> in) {
  const int M = in.N + in.P;
  for (int64_t i = grid_stride_begin(); i < M; i += grid_stride_step()) {
    const int32_t key = i < in.N ? in.positives[i] : in.negatives[i - in.N];
    const bool ignored = i < in.N && key == in.ignore_index;
    keys[i] = !ignored && key >= 0 && key < in.V ? key : in.V;
    ids[i] = static_cast<int32_t>(i);
  }
}

// Block (i, y): when sorted entry i starts a run of equal keys, adds to table row keys[i],
// channels [y·threads, (y+1)·threads), the run's contributions in ascending id order.
__global__ void scatter_candidates(float* dwte, const int32_t* keys, const int32_t* ids,
                                   const float* dpos, const float* dE, const float* hidden, int N,
                                   int M, int C, int V) {
  const int i = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  const int32_t key = keys[i];
  if (c >= C || key == V || (i > 0 && keys[i - 1] == key)) return;
  float* element = dwte + static_cast<int64_t>(key) * C + c;
  float sum = *element;
  for (int r = i; r < M && keys[r] == key; ++r) {
    const int id = ids[r];
    sum += id < N ? dpos[id] * hidden[static_cast<int64_t>(id) * C + c]
                  : dE[static_cast<int64_t>(id - N) * C + c];
  }
  *element = sum;
}

// Bits that hold the keys 0..V.
int key_bits(int V) {
  int bits = 1;
  while ((int64_t{1} << bits) <= V) ++bits;
  return bits;
}

size_t aligned(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// The call's scratch arrays, carved from the context's scratch area.
struct Scratch {
  void* sort_temp;  // CUB's temporary storage
  size_t sort_temp_bytes;
  float *E, *dE, *tile, *dpos;                     // [P, C], [P, C], [R, P], [N]
  int32_t *keys, *ids, *sorted_keys, *sorted_ids;  // [N + P] each
};

Scratch carve_scratch(const Context& ctx, int N, int C, int P, int rows_per_chunk, int end_bit) {
  const int M = N + P;
  Scratch s{};
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, s.sort_temp_bytes, s.keys, s.sorted_keys,
                                             s.ids, s.sorted_ids, M, 0, end_bit, stream_of(ctx)));
  const size_t sizes[] = {aligned(s.sort_temp_bytes),
                          aligned(sizeof(float) * P * C),
                          aligned(sizeof(float) * P * C),
                          aligned(sizeof(float) * static_cast<size_t>(rows_per_chunk) * P),
                          aligned(sizeof(float) * N),
                          aligned(sizeof(int32_t) * M),
                          aligned(sizeof(int32_t) * M),
                          aligned(sizeof(int32_t) * M),
                          aligned(sizeof(int32_t) * M)};
  size_t total = 0;
  for (size_t size : sizes) total += size;
  auto* next = static_cast<char*>(scratch(ctx, total));
  auto take = [&next](size_t bytes) {
    void* p = next;
    next += bytes;
    return p;
  };
  s.sort_temp = take(sizes[0]);
  s.E = static_cast<float*>(take(sizes[1]));
  s.dE = static_cast<float*>(take(sizes[2]));
  s.tile = static_cast<float*>(take(sizes[3]));
  s.dpos = static_cast<float*>(take(sizes[4]));
  s.keys = static_cast<int32_t*>(take(sizes[5]));
  s.ids = static_cast<int32_t*>(take(sizes[6]));
  s.sorted_keys = static_cast<int32_t*>(take(sizes[7]));
  s.sorted_ids = static_cast<int32_t*>(take(sizes[8]));
  return s;
}

// dwte[key] += contributions of every candidate, grouped by a stable sort of the keys.
void scatter_table_gradient(const Context& ctx, float* dwte, const Scratch& s,
                            const SampledSoftmaxInputs<float>& in, int end_bit) {
  const int M = in.N + in.P;
  cudaStream_t stream = stream_of(ctx);
  candidate_keys<<<grid_stride_blocks(ctx, M), kElementwiseThreads, 0, stream>>>(s.keys, s.ids, in);
  CUDA_CHECK_LAUNCH();
  size_t temp_bytes = s.sort_temp_bytes;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(s.sort_temp, temp_bytes, s.keys, s.sorted_keys, s.ids,
                                             s.sorted_ids, M, 0, end_bit, stream));
  const int threads = channel_threads(in.C);
  scatter_candidates<<<dim3(M, ceil_div(in.C, threads)), threads, 0, stream>>>(
      dwte, s.sorted_keys, s.sorted_ids, s.dpos, s.dE, in.hidden, in.N, M, in.C, in.V);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void sampled_softmax_forward_backward(const Context& ctx, float* losses, float* dhidden,
                                      float* dwte, const SampledSoftmaxInputs<float>& in,
                                      float loss_scale) {
  const int N = in.N, C = in.C, P = in.P;
  if (N == 0) return;
  const bool backward = dhidden != nullptr;
  const int rows_per_chunk = static_cast<int>(
      std::clamp<int64_t>(static_cast<int64_t>(kMaxTileBytes / sizeof(float)) / P, 1, N));
  const int end_bit = key_bits(in.V);
  const Scratch s = carve_scratch(ctx, N, C, P, rows_per_chunk, end_bit);
  cudaStream_t stream = stream_of(ctx);
  const int threads = channel_threads(C);
  gather_negatives<<<dim3(P, ceil_div(C, threads)), threads, 0, stream>>>(s.E, in.wte, in.negatives,
                                                                          C, in.V);
  CUDA_CHECK_LAUNCH();
  const float scale = loss_scale / in.temperature;
  for (int64_t row0 = 0; row0 < N; row0 += rows_per_chunk) {
    const int rows = static_cast<int>(std::min<int64_t>(rows_per_chunk, N - row0));
    const float* hidden_rows = in.hidden + row0 * C;
    // tile[rows, P] = hidden[rows] · Eᵀ
    gemm(ctx, Transpose::kNo, Transpose::kYes, rows, P, C, hidden_rows, C, s.E, C, 0.0f, s.tile, P);
    softmax_rows<<<rows, kRowThreads, 0, stream>>>(losses, s.dpos, s.tile, in, row0, scale,
                                                   backward);
    CUDA_CHECK_LAUNCH();
    if (!backward) continue;
    // dhidden[rows] = tile · E, then += dpos ⊗ e_p
    gemm(ctx, Transpose::kNo, Transpose::kNo, rows, C, P, s.tile, P, s.E, C, 0.0f,
         dhidden + row0 * C, C);
    add_positive_rows<<<grid_stride_blocks(ctx, static_cast<int64_t>(rows) * C),
                        kElementwiseThreads, 0, stream>>>(dhidden, s.dpos, in, row0, rows);
    CUDA_CHECK_LAUNCH();
    // dE[P, C] (+)= tileᵀ · hidden[rows]
    gemm(ctx, Transpose::kYes, Transpose::kNo, P, C, rows, s.tile, P, hidden_rows, C,
         row0 == 0 ? 0.0f : 1.0f, s.dE, C);
  }
  if (backward) scatter_table_gradient(ctx, dwte, s, in, end_bit);
}

}  // namespace recforge::cuda
