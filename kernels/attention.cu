// Flash attention over packed variable-length sequences on the GPU, templated on the head size
// HS ∈ {32, 64, 128} and on the storage type A ∈ {float, bf16} of qkv, out, dout and dqkv. Layouts
// and the math are in kernels/attention.h; this file is the tiling. Grouped-query attention: query
// head h reads key/value head g = h / G (G = NH / KV query heads per kv head) in place; K and V are
// never repeated in memory.
//
// Storage: all arithmetic, every register and every shared-memory tile are fp32 for both storage
// types; lse and delta are fp32. With bf16 storage a head tile is widened to float as it is loaded
// into its fp32 shared-memory tile (each thread reads 4 consecutive bf16 as one 8-byte vector, the
// same coalesced pattern as the float4 reads of fp32) and outputs are rounded to bf16 (nearest
// even) once, on store; the delta kernel widens dout and out. So bf16 halves the global traffic of
// the head tensors while the tiling and the math are the same. A bf16 tensor-core (mma) kernel,
// which would also halve shared memory and run the tile products on tensor cores, is future work.
//
// Every kernel runs 256 threads seen as a 16 × 16 grid (ty, tx) and is built from two block-wide
// tile products on shared memory:
//   tile_dot:        S = A · Bᵀ over HS, A [R][HS], B [K][HS]; thread (ty, tx) computes rows
//                    ty·RM + i (RM = R/16) and columns tx + 16·j (j < K/16), in registers.
//   tile_accumulate: acc += P · X, P [R][K] (scores), X [K][HS]; thread (ty, tx) owns rows
//                    ty·RM + i and head channels tx + 16·k (k < HS/16), in registers.
// A thread's score rows are therefore the same rows as its output rows, and the 16 threads sharing
// a row are the 16 lanes of one half-warp, so row reductions are half-warp shuffles.
// Head tiles live in shared memory as [rows][HS + 4]: the +4 makes the float4 reads of 8 lanes on
// consecutive rows hit 32 distinct banks. Score tile rows are padded to width + 16/RM floats, so
// rows RM apart (the two half-warps of a warp) start 16 banks apart and never conflict.
//
// Grids are (tiles of max_length, B, heads): NH query heads for the forward and dQ, KV kv heads for
// dK/dV. A block whose tile starts past its sequence's end exits at once (uniformly, before any
// barrier). Rows past the end are zero-filled in shared memory, masked out of the softmax, and
// never written.
//
// Forward, block = kForwardQueries queries of one (sequence, head); Q stays in shared memory while
// K/V tiles stream through (causal blocks stop at the diagonal tile). Per tile:
//   S = Q·Kᵀ·scale (masked −∞), m' = max(m, rowmax S), P = exp(S − m'),
//   l ← l·exp(m − m') + Σ P,  acc ← acc·exp(m − m') + P·V,  m ← m'.
// Finally out = acc / l and lse = m + log l. The first key of the sequence is visible to every row
// of every block (also to the zero rows past the end), so m is finite after the first tile,
// exp(m − m') never sees ∞ − ∞, and l ≥ 1: no NaN.
//
// Backward (FA2-style, deterministic: every output element has exactly one writer, no atomics):
//   delta kernel:  D_i = Σ_d dout_i ⊙ out_i, one warp per (token, head).
//   dK/dV kernel:  block = kBackwardOwned keys of one kv head g; K and V stay in shared memory;
//                  for each query head h of g's group in head order, h's query tiles stream
//                  (causal: from the block's first key on). Recompute, for the thread's
//                  (key j, query i) pairs, Pᵀ_ji = exp(k_j·q_i·scale − lse_i) and
//                  dPᵀ_ji = v_j·dout_i, dSᵀ_ji = Pᵀ_ji (dPᵀ_ji − D_i)·scale, then
//                  dV += Pᵀ·dO and dK += dSᵀ·Q. dK and dV stay in registers over the whole group
//                  (the sum over its query heads, in a fixed order) and are stored once.
//   dQ kernel:     block = kBackwardOwned queries; Q, dO stay; key tiles stream (causal: up to
//                  the diagonal). Recompute P and dS the same way, dQ += dS·K.
// The pair (P, dS) is recomputed twice, once per kernel, instead of being stored: O(T) memory.

#include <cmath>

#include "kernels/attention.h"
#include "kernels/bf16.h"
#include "kernels/cuda_common.cuh"

namespace recforge::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kGridSide = 16;  // threads per row and per column of the 16 × 16 thread grid

template <int HS>
struct Tiles {
  static constexpr int kForwardQueries = 64;
  static constexpr int kForwardKeys = HS == 128 ? 32 : 64;
  static constexpr int kBackwardOwned = HS == 128 ? 32 : 64;  // keys (dK/dV), queries (dQ)
  static constexpr int kBackwardStreamed = 32;                // queries (dK/dV), keys (dQ)
  static constexpr int kStride = HS + 4;                      // head tile row stride, floats
};

// Row stride of a score tile `cols` wide whose rows are dealt out rows_per_thread at a time:
// rows_per_thread · stride ≡ 16 (mod 32) for cols a multiple of 32.
constexpr int score_stride(int cols, int rows_per_thread) { return cols + 16 / rows_per_thread; }

struct AttentionArgs {
  const int32_t* offsets;
  int num_heads;       // NH, query heads: rows of lse and delta per token
  int num_kv_heads;    // KV
  int group_size;      // G = NH / KV, query heads per kv head
  int64_t qkv_stride;  // (NH + 2·KV)·HS, elements between consecutive tokens of qkv and dqkv
  float scale;         // 1 / √HS
  bool causal;
};

// Offsets within a token's qkv (or dqkv) row of query head h and of the key and value heads of kv
// head g.
template <int HS>
__device__ __forceinline__ int64_t query_column(int h) {
  return static_cast<int64_t>(h) * HS;
}
template <int HS>
__device__ __forceinline__ int64_t key_column(const AttentionArgs& args, int g) {
  return static_cast<int64_t>(args.num_heads + g) * HS;
}
template <int HS>
__device__ __forceinline__ int64_t value_column(const AttentionArgs& args, int g) {
  return static_cast<int64_t>(args.num_heads + args.num_kv_heads + g) * HS;
}

extern __shared__ float4 attention_shared[];

__device__ __forceinline__ int thread_row() { return threadIdx.x / kGridSide; }
__device__ __forceinline__ int thread_col() { return threadIdx.x % kGridSide; }

// Whether a query may attend to a key, positions relative to the sequence start. A query past the
// end sees every key up to it; the backward masks such queries separately.
__device__ __forceinline__ bool key_visible(int query, int key, int length, bool causal) {
  return key < length && !(causal && key > query);
}

// Two bf16 packed in a 32-bit word (little-endian: the first element in the low half) as floats.
__device__ __forceinline__ float2 widen_bf16_pair(uint32_t word) {
  return make_float2(bf16_to_float(bf16{static_cast<uint16_t>(word)}),
                     bf16_to_float(bf16{static_cast<uint16_t>(word >> 16)}));
}

// Four consecutive elements widened to a float4: one 16-byte load for float, one 8-byte load for
// bf16.
__device__ __forceinline__ float4 load_float4(const float* src) {
  return *reinterpret_cast<const float4*>(src);
}
__device__ __forceinline__ float4 load_float4(const bf16* src) {
  const uint2 words = *reinterpret_cast<const uint2*>(src);
  const float2 low = widen_bf16_pair(words.x), high = widen_bf16_pair(words.y);
  return make_float4(low.x, low.y, high.x, high.y);
}

// tile[r][0:HS] = src[r · row_stride + 0:HS] for r < valid_rows, zero for the rest of the ROWS,
// widened to float. Consecutive threads copy consecutive 4-element vectors of a row: coalesced
// global reads.
template <int HS, int ROWS, typename A>
__device__ void load_tile(float* tile, const A* src, int64_t row_stride, int valid_rows) {
  constexpr int kVectorsPerRow = HS / 4;
  for (int index = threadIdx.x; index < ROWS * kVectorsPerRow; index += kThreads) {
    const int r = index / kVectorsPerRow, c = index % kVectorsPerRow * 4;
    float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < valid_rows) value = load_float4(src + r * row_stride + c);
    *reinterpret_cast<float4*>(tile + r * Tiles<HS>::kStride + c) = value;
  }
}

// s[i][j] = A[ty·RM + i, :] · B[tx + 16j, :] over HS channels (A, B head tiles).
template <int HS, int RM, int CN>
__device__ void tile_dot(float (&s)[RM][CN], const float* A, const float* B) {
  constexpr int kStride = Tiles<HS>::kStride;
  const float* a_rows = A + thread_row() * RM * kStride;
  const float* b_rows = B + thread_col() * kStride;
#pragma unroll
  for (int i = 0; i < RM; ++i) {
#pragma unroll
    for (int j = 0; j < CN; ++j) s[i][j] = 0.0f;
  }
#pragma unroll 2
  for (int d = 0; d < HS; d += 4) {
    float4 a[RM], b[CN];
#pragma unroll
    for (int i = 0; i < RM; ++i) a[i] = *reinterpret_cast<const float4*>(a_rows + i * kStride + d);
#pragma unroll
    for (int j = 0; j < CN; ++j) {
      b[j] = *reinterpret_cast<const float4*>(b_rows + j * kGridSide * kStride + d);
    }
#pragma unroll
    for (int i = 0; i < RM; ++i) {
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        s[i][j] += a[i].x * b[j].x + a[i].y * b[j].y + a[i].z * b[j].z + a[i].w * b[j].w;
      }
    }
  }
}

// acc[i][k] += Σ_{j < COLS} P[ty·RM + i, j] · X[j, tx + 16k]  (P a score tile, X a head tile).
template <int HS, int RM, int COLS, int P_STRIDE>
__device__ void tile_accumulate(float (&acc)[RM][HS / kGridSide], const float* P, const float* X) {
  constexpr int kChannels = HS / kGridSide;
  const float* p_rows = P + thread_row() * RM * P_STRIDE;
  const float* x_cols = X + thread_col();
#pragma unroll 4
  for (int j = 0; j < COLS; ++j) {
    float x[kChannels];
#pragma unroll
    for (int k = 0; k < kChannels; ++k) x[k] = x_cols[j * Tiles<HS>::kStride + k * kGridSide];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const float p = p_rows[i * P_STRIDE + j];
#pragma unroll
      for (int k = 0; k < kChannels; ++k) acc[i][k] += p * x[k];
    }
  }
}

// Writes the thread's rows of acc (rows row0 + ty·RM + i < length) to a [tokens][row_stride]
// tensor whose row 0 is `dst` (one head's channels), rounded once to the storage type.
template <int HS, int RM, typename A>
__device__ void store_rows(A* dst, int64_t row_stride, int row0, int length,
                           const float (&acc)[RM][HS / kGridSide]) {
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int row = row0 + thread_row() * RM + i;
    if (row >= length) continue;
#pragma unroll
    for (int k = 0; k < HS / kGridSide; ++k) {
      dst[row * row_stride + thread_col() + k * kGridSide] = store_as<A>(acc[i][k]);
    }
  }
}

template <int HS, int RM>
__device__ void zero(float (&acc)[RM][HS / kGridSide]) {
#pragma unroll
  for (int i = 0; i < RM; ++i) {
#pragma unroll
    for (int k = 0; k < HS / kGridSide; ++k) acc[i][k] = 0.0f;
  }
}

// ---- Forward ------------------------------------------------------------------------------------
template <int HS>
constexpr size_t forward_shared_floats() {
  using T = Tiles<HS>;
  constexpr int RM = T::kForwardQueries / kGridSide;
  return (T::kForwardQueries + 2 * T::kForwardKeys) * T::kStride +
         T::kForwardQueries * score_stride(T::kForwardKeys, RM);
}

template <int HS, typename A>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(A* out, float* lse, const A* qkv, AttentionArgs args) {
  using T = Tiles<HS>;
  constexpr int BQ = T::kForwardQueries, BK = T::kForwardKeys;
  constexpr int RM = BQ / kGridSide, CN = BK / kGridSide;
  constexpr int P_STRIDE = score_stride(BK, RM);
  const int b = blockIdx.y, h = blockIdx.z, q0 = blockIdx.x * BQ;
  const int begin = args.offsets[b], length = args.offsets[b + 1] - begin;
  if (q0 >= length) return;

  float* Qs = reinterpret_cast<float*>(attention_shared);  // [BQ][HS + 4]
  float* Ks = Qs + BQ * T::kStride;                        // [BK][HS + 4]
  float* Vs = Ks + BK * T::kStride;                        // [BK][HS + 4]
  float* Ps = Vs + BK * T::kStride;                        // [BQ][P_STRIDE]

  const int C = args.num_heads * HS, g = h / args.group_size;
  const int64_t qkv_stride = args.qkv_stride;
  const A* seq = qkv + begin * qkv_stride;  // token `begin`'s row
  const A *q_head = seq + query_column<HS>(h), *k_head = seq + key_column<HS>(args, g),
          *v_head = seq + value_column<HS>(args, g);
  load_tile<HS, BQ>(Qs, q_head + q0 * qkv_stride, qkv_stride, length - q0);

  const int ty = thread_row(), tx = thread_col();
  float row_max[RM], row_sum[RM], acc[RM][HS / kGridSide];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.0f;  // this thread's columns only, reduced over the half-warp at the end
  }
  zero<HS, RM>(acc);

  const int key_end = args.causal ? min(length, q0 + BQ) : length;
  for (int k0 = 0; k0 < key_end; k0 += BK) {
    __syncthreads();  // the previous tile's readers are done with Ks, Vs, Ps
    load_tile<HS, BK>(Ks, k_head + k0 * qkv_stride, qkv_stride, length - k0);
    load_tile<HS, BK>(Vs, v_head + k0 * qkv_stride, qkv_stride, length - k0);
    __syncthreads();
    float s[RM][CN];
    tile_dot<HS>(s, Qs, Ks);
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int query = q0 + ty * RM + i;
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const bool visible = key_visible(query, k0 + tx + j * kGridSide, length, args.causal);
        s[i][j] = visible ? s[i][j] * args.scale : -INFINITY;
        tile_max = fmaxf(tile_max, s[i][j]);
      }
      const float new_max = fmaxf(row_max[i], warp_reduce<kGridSide>(tile_max, Max{}));
      const float correction = expf(row_max[i] - new_max);  // 0 on the first tile
      row_sum[i] *= correction;
#pragma unroll
      for (int k = 0; k < HS / kGridSide; ++k) acc[i][k] *= correction;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const float p = expf(s[i][j] - new_max);  // 0 for masked keys
        row_sum[i] += p;
        Ps[(ty * RM + i) * P_STRIDE + tx + j * kGridSide] = p;
      }
      row_max[i] = new_max;
    }
    __syncthreads();  // Ps complete
    tile_accumulate<HS, RM, BK, P_STRIDE>(acc, Ps, Vs);
  }

#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const float sum = warp_reduce<kGridSide>(row_sum[i], Sum{});
#pragma unroll
    for (int k = 0; k < HS / kGridSide; ++k) acc[i][k] /= sum;
    const int query = q0 + ty * RM + i;
    if (tx == 0 && query < length) {
      lse[(static_cast<int64_t>(begin) + query) * args.num_heads + h] = row_max[i] + logf(sum);
    }
  }
  store_rows<HS, RM>(out + static_cast<int64_t>(begin) * C + h * HS, C, q0, length, acc);
}

// ---- Backward -----------------------------------------------------------------------------------
constexpr int kDeltaWarps = 8;

// delta[r] = Σ_d dout[r, d] · out[r, d] over the rows r = (token, head) of [N·NH, HS].
template <typename A>
__global__ void attention_delta_kernel(float* delta, const A* dout, const A* out, int64_t rows,
                                       int HS) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kDeltaWarps + threadIdx.x / kWarpSize;
  if (r >= rows) return;
  float sum = 0.0f;
  for (int d = threadIdx.x % kWarpSize; d < HS; d += kWarpSize) {
    sum += load_as_float(dout[r * HS + d]) * load_as_float(out[r * HS + d]);
  }
  sum = warp_reduce(sum, Sum{});
  if (threadIdx.x % kWarpSize == 0) delta[r] = sum;
}

// lse and delta of `count` rows starting at query q0 into shared memory (0 past the end).
__device__ void load_row_stats(float* lse_s, float* delta_s, const float* lse, const float* delta,
                               int64_t first_token, int q0, int count, int length, int num_heads,
                               int h) {
  for (int r = threadIdx.x; r < count; r += kThreads) {
    const bool valid = q0 + r < length;
    const int64_t at = (first_token + q0 + r) * num_heads + h;
    lse_s[r] = valid ? lse[at] : 0.0f;
    delta_s[r] = valid ? delta[at] : 0.0f;
  }
}

template <int HS>
constexpr size_t backward_dkdv_shared_floats() {
  using T = Tiles<HS>;
  constexpr int RM = T::kBackwardOwned / kGridSide;
  return 2 * (T::kBackwardOwned + T::kBackwardStreamed) * T::kStride +
         2 * T::kBackwardOwned * score_stride(T::kBackwardStreamed, RM) + 2 * T::kBackwardStreamed;
}

// The dK/dV kernel's shared memory: the owned K and V tiles, the streamed Q and dO tiles, the
// transposed score tiles and the streamed queries' lse and delta.
template <int HS>
struct DkdvShared {
  static constexpr int BK = Tiles<HS>::kBackwardOwned, BQ = Tiles<HS>::kBackwardStreamed;
  static constexpr int P_STRIDE = score_stride(BQ, BK / kGridSide);
  float* Ks;       // [BK][HS + 4]
  float* Vs;       // [BK][HS + 4]
  float* Qs;       // [BQ][HS + 4]
  float* dOs;      // [BQ][HS + 4]
  float* Ps;       // [BK][P_STRIDE], Pᵀ
  float* dSs;      // [BK][P_STRIDE], dSᵀ
  float* lse_s;    // [BQ]
  float* delta_s;  // [BQ]

  __device__ explicit DkdvShared(float* base)
      : Ks(base),
        Vs(Ks + BK * Tiles<HS>::kStride),
        Qs(Vs + BK * Tiles<HS>::kStride),
        dOs(Qs + BQ * Tiles<HS>::kStride),
        Ps(dOs + BQ * Tiles<HS>::kStride),
        dSs(Ps + BK * P_STRIDE),
        lse_s(dSs + BK * P_STRIDE),
        delta_s(lse_s + BQ) {}
};

// The (sequence, query head) a dK/dV block streams: the head's queries in qkv, its rows of dout,
// and its column of lse and delta.
template <typename A>
struct StreamedHead {
  const A* q;     // qkv row of the sequence's first token, at query head h
  const A* dout;  // dout row of the sequence's first token, at head h
  int h;
};

// One streamed query tile (queries q0 .. q0 + BQ) of query head `head` against the block's keys
// k0 .. k0 + BK: recomputes Pᵀ and dSᵀ into shared memory and accumulates dV += Pᵀ·dO and
// dK += dSᵀ·Q in registers.
template <int HS, typename A, int RM>
__device__ __forceinline__ void dkdv_query_tile(float (&dk)[RM][HS / kGridSide],
                                                float (&dv)[RM][HS / kGridSide],
                                                const DkdvShared<HS>& sh,
                                                const StreamedHead<A>& head, const float* lse,
                                                const float* delta, int begin, int length, int q0,
                                                int k0, const AttentionArgs& args) {
  using S = DkdvShared<HS>;
  constexpr int BQ = S::BQ, CN = BQ / kGridSide, P_STRIDE = S::P_STRIDE;
  const int C = args.num_heads * HS;
  __syncthreads();  // the previous tile's readers are done with Qs, dOs, Ps, dSs, lse_s, delta_s
  load_tile<HS, BQ>(sh.Qs, head.q + q0 * args.qkv_stride, args.qkv_stride, length - q0);
  load_tile<HS, BQ>(sh.dOs, head.dout + static_cast<int64_t>(q0) * C, C, length - q0);
  load_row_stats(sh.lse_s, sh.delta_s, lse, delta, begin, q0, BQ, length, args.num_heads, head.h);
  __syncthreads();
  float s[RM][CN], dp[RM][CN];
  tile_dot<HS>(s, sh.Ks, sh.Qs);    // sᵀ_ji = k_j · q_i
  tile_dot<HS>(dp, sh.Vs, sh.dOs);  // dPᵀ_ji = v_j · dout_i
  const int ty = thread_row(), tx = thread_col();
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int key = k0 + ty * RM + i;
#pragma unroll
    for (int j = 0; j < CN; ++j) {
      const int column = tx + j * kGridSide, query = q0 + column;
      const bool visible = query < length && key_visible(query, key, length, args.causal);
      const float p = visible ? expf(s[i][j] * args.scale - sh.lse_s[column]) : 0.0f;
      sh.Ps[(ty * RM + i) * P_STRIDE + column] = p;
      sh.dSs[(ty * RM + i) * P_STRIDE + column] = p * (dp[i][j] - sh.delta_s[column]) * args.scale;
    }
  }
  __syncthreads();  // Ps, dSs complete
  tile_accumulate<HS, RM, BQ, P_STRIDE>(dv, sh.Ps, sh.dOs);
  tile_accumulate<HS, RM, BQ, P_STRIDE>(dk, sh.dSs, sh.Qs);
}

// Block (key tile, sequence b, kv head g): dK and dV of keys k0 .. k0 + BK of head g, summed over
// the query heads of g's group in head order (one writer, a fixed order: deterministic).
template <int HS, typename A>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(A* dqkv, const A* dout, const A* qkv, const float* lse,
                                   const float* delta, AttentionArgs args) {
  using S = DkdvShared<HS>;
  constexpr int BK = S::BK, RM = BK / kGridSide;
  const int b = blockIdx.y, g = blockIdx.z, k0 = blockIdx.x * BK;
  const int begin = args.offsets[b], length = args.offsets[b + 1] - begin;
  if (k0 >= length) return;

  const S sh(reinterpret_cast<float*>(attention_shared));
  const int C = args.num_heads * HS;
  const A* seq = qkv + begin * args.qkv_stride;  // token `begin`'s row
  load_tile<HS, BK>(sh.Ks, seq + key_column<HS>(args, g) + k0 * args.qkv_stride, args.qkv_stride,
                    length - k0);
  load_tile<HS, BK>(sh.Vs, seq + value_column<HS>(args, g) + k0 * args.qkv_stride, args.qkv_stride,
                    length - k0);

  float dk[RM][HS / kGridSide], dv[RM][HS / kGridSide];
  zero<HS, RM>(dk);
  zero<HS, RM>(dv);
  for (int h = g * args.group_size; h < (g + 1) * args.group_size; ++h) {
    const StreamedHead<A> head{seq + query_column<HS>(h),
                               dout + static_cast<int64_t>(begin) * C + h * HS, h};
    // Causal: queries before k0 see none of these keys.
    for (int q0 = args.causal ? k0 : 0; q0 < length; q0 += S::BQ) {
      dkdv_query_tile<HS>(dk, dv, sh, head, lse, delta, begin, length, q0, k0, args);
    }
  }

  A* grad_seq = dqkv + begin * args.qkv_stride;  // token `begin`'s row of dqkv
  store_rows<HS, RM>(grad_seq + key_column<HS>(args, g), args.qkv_stride, k0, length, dk);
  store_rows<HS, RM>(grad_seq + value_column<HS>(args, g), args.qkv_stride, k0, length, dv);
}

template <int HS>
constexpr size_t backward_dq_shared_floats() {
  using T = Tiles<HS>;
  constexpr int RM = T::kBackwardOwned / kGridSide;
  return 2 * (T::kBackwardOwned + T::kBackwardStreamed) * T::kStride +
         T::kBackwardOwned * score_stride(T::kBackwardStreamed, RM);
}

template <int HS, typename A>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(A* dqkv, const A* dout, const A* qkv, const float* lse,
                                 const float* delta, AttentionArgs args) {
  using T = Tiles<HS>;
  constexpr int BQ = T::kBackwardOwned, BK = T::kBackwardStreamed;
  constexpr int RM = BQ / kGridSide, CN = BK / kGridSide;
  constexpr int P_STRIDE = score_stride(BK, RM);
  const int b = blockIdx.y, h = blockIdx.z, q0 = blockIdx.x * BQ;
  const int begin = args.offsets[b], length = args.offsets[b + 1] - begin;
  if (q0 >= length) return;

  float* Qs = reinterpret_cast<float*>(attention_shared);  // [BQ][HS + 4]
  float* dOs = Qs + BQ * T::kStride;                       // [BQ][HS + 4]
  float* Ks = dOs + BQ * T::kStride;                       // [BK][HS + 4]
  float* Vs = Ks + BK * T::kStride;                        // [BK][HS + 4]
  float* dSs = Vs + BK * T::kStride;                       // [BQ][P_STRIDE]

  const int C = args.num_heads * HS, g = h / args.group_size;
  const int64_t qkv_stride = args.qkv_stride;
  const A* seq = qkv + begin * qkv_stride;  // token `begin`'s row
  const A *q_head = seq + query_column<HS>(h), *k_head = seq + key_column<HS>(args, g),
          *v_head = seq + value_column<HS>(args, g);
  load_tile<HS, BQ>(Qs, q_head + q0 * qkv_stride, qkv_stride, length - q0);
  load_tile<HS, BQ>(dOs, dout + (static_cast<int64_t>(begin) + q0) * C + h * HS, C, length - q0);

  const int ty = thread_row(), tx = thread_col();
  float row_lse[RM], row_delta[RM];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int query = q0 + ty * RM + i;
    const int64_t at = (static_cast<int64_t>(begin) + query) * args.num_heads + h;
    row_lse[i] = query < length ? lse[at] : 0.0f;
    row_delta[i] = query < length ? delta[at] : 0.0f;
  }
  float dq[RM][HS / kGridSide];
  zero<HS, RM>(dq);

  const int key_end = args.causal ? min(length, q0 + BQ) : length;
  for (int k0 = 0; k0 < key_end; k0 += BK) {
    __syncthreads();  // the previous tile's readers are done with Ks, Vs, dSs
    load_tile<HS, BK>(Ks, k_head + k0 * qkv_stride, qkv_stride, length - k0);
    load_tile<HS, BK>(Vs, v_head + k0 * qkv_stride, qkv_stride, length - k0);
    __syncthreads();
    float s[RM][CN], dp[RM][CN];
    tile_dot<HS>(s, Qs, Ks);    // s_ij = q_i · k_j
    tile_dot<HS>(dp, dOs, Vs);  // dP_ij = dout_i · v_j
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int query = q0 + ty * RM + i;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const int column = tx + j * kGridSide, key = k0 + column;
        const bool visible = query < length && key_visible(query, key, length, args.causal);
        const float p = visible ? expf(s[i][j] * args.scale - row_lse[i]) : 0.0f;
        dSs[(ty * RM + i) * P_STRIDE + column] = p * (dp[i][j] - row_delta[i]) * args.scale;
      }
    }
    __syncthreads();  // dSs complete
    tile_accumulate<HS, RM, BK, P_STRIDE>(dq, dSs, Ks);
  }
  store_rows<HS, RM>(dqkv + begin * qkv_stride + query_column<HS>(h), qkv_stride, q0, length, dq);
}

// ---- Launch -------------------------------------------------------------------------------------
template <typename Kernel, typename... Args>
void launch(Kernel kernel, dim3 grid, size_t shared_floats, cudaStream_t stream, Args... args) {
  const size_t shared_bytes = shared_floats * sizeof(float);
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(shared_bytes)));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(args...);
  CUDA_CHECK_LAUNCH();
}

// (tiles of max_length, B, heads): `heads` is NH for the query-owning kernels, KV for dK/dV.
dim3 tile_grid(const PackedSequences& seqs, int heads, int tile_rows) {
  return dim3(ceil_div(seqs.max_length, tile_rows), seqs.num_sequences, heads);
}

AttentionArgs make_args(const PackedSequences& seqs, const AttentionShape& shape) {
  return {seqs.offsets,
          shape.num_heads,
          shape.kv_heads(),
          shape.group_size(),
          shape.qkv_channels(),
          1.0f / std::sqrt(static_cast<float>(shape.head_size)),
          shape.mask == AttentionMask::kCausal};
}

// Whether there is any work, after checking what the grid and the vector loads rely on.
template <typename A>
bool check_launch(const PackedSequences& seqs, const AttentionShape& shape, const A* qkv,
                  const A* tensor_read_as_vectors) {
  constexpr size_t kVectorBytes = 4 * sizeof(A);  // a float4, or 4 bf16
  RECFORGE_CHECK(seqs.num_sequences <= 65535 && shape.num_heads <= 65535,
                 "attention: B=", seqs.num_sequences, " NH=", shape.num_heads,
                 " exceed the CUDA grid");
  RECFORGE_CHECK(reinterpret_cast<uintptr_t>(qkv) % kVectorBytes == 0 &&
                     reinterpret_cast<uintptr_t>(tensor_read_as_vectors) % kVectorBytes == 0,
                 "attention: qkv and dout must be ", kVectorBytes, "-byte aligned");
  return seqs.num_sequences > 0 && seqs.max_length > 0 && seqs.num_tokens > 0;
}

template <int HS, typename A>
void forward(const Context& ctx, A* out, float* lse, const A* qkv, const PackedSequences& seqs,
             const AttentionShape& shape) {
  launch(attention_forward_kernel<HS, A>,
         tile_grid(seqs, shape.num_heads, Tiles<HS>::kForwardQueries), forward_shared_floats<HS>(),
         stream_of(ctx), out, lse, qkv, make_args(seqs, shape));
}

template <int HS, typename A>
void backward(const Context& ctx, A* dqkv, const float* delta, const A* dout, const A* qkv,
              const float* lse, const PackedSequences& seqs, const AttentionShape& shape) {
  const int owned = Tiles<HS>::kBackwardOwned;
  const AttentionArgs args = make_args(seqs, shape);
  launch(attention_backward_dkdv_kernel<HS, A>, tile_grid(seqs, shape.kv_heads(), owned),
         backward_dkdv_shared_floats<HS>(), stream_of(ctx), dqkv, dout, qkv, lse, delta, args);
  launch(attention_backward_dq_kernel<HS, A>, tile_grid(seqs, shape.num_heads, owned),
         backward_dq_shared_floats<HS>(), stream_of(ctx), dqkv, dout, qkv, lse, delta, args);
}

}  // namespace

template <typename A>
void attention_forward(const Context& ctx, A* out, float* lse, const A* qkv,
                       const PackedSequences& seqs, const AttentionShape& shape) {
  if (!check_launch(seqs, shape, qkv, qkv)) return;
  switch (shape.head_size) {
    case 32:
      return forward<32>(ctx, out, lse, qkv, seqs, shape);
    case 64:
      return forward<64>(ctx, out, lse, qkv, seqs, shape);
    default:
      return forward<128>(ctx, out, lse, qkv, seqs, shape);  // validate_attention checked HS
  }
}

template <typename A>
void attention_backward(const Context& ctx, A* dqkv, float* delta, const A* dout, const A* qkv,
                        const A* out, const float* lse, const PackedSequences& seqs,
                        const AttentionShape& shape) {
  if (!check_launch(seqs, shape, qkv, dout)) return;
  const int64_t rows = static_cast<int64_t>(seqs.num_tokens) * shape.num_heads;
  attention_delta_kernel<<<ceil_div(rows, kDeltaWarps), kDeltaWarps * kWarpSize, 0,
                           stream_of(ctx)>>>(delta, dout, out, rows, shape.head_size);
  CUDA_CHECK_LAUNCH();
  switch (shape.head_size) {
    case 32:
      return backward<32>(ctx, dqkv, delta, dout, qkv, lse, seqs, shape);
    case 64:
      return backward<64>(ctx, dqkv, delta, dout, qkv, lse, seqs, shape);
    default:
      return backward<128>(ctx, dqkv, delta, dout, qkv, lse, seqs, shape);
  }
}

#define RECFORGE_INSTANTIATE(A)                                                                    \
  template void attention_forward<A>(const Context&, A*, float*, const A*, const PackedSequences&, \
                                     const AttentionShape&);                                       \
  template void attention_backward<A>(const Context&, A*, float*, const A*, const A*, const A*,    \
                                      const float*, const PackedSequences&,                        \
                                      const AttentionShape&);
RECFORGE_INSTANTIATE(float)
RECFORGE_INSTANTIATE(bf16)
#undef RECFORGE_INSTANTIATE

}  // namespace recforge::cuda
