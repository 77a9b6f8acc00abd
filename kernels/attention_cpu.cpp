#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/blas.h"
#include "kernels/convert.h"
#include "kernels/cpu_math.h"

namespace recforge {

void validate_attention(const PackedSequences& seqs, const AttentionShape& shape) {
  RECFORGE_CHECK(shape.head_size == 32 || shape.head_size == 64 || shape.head_size == 128,
                 "attention: head size ", shape.head_size,
                 " is not supported (expected 32, 64 or 128)");
  RECFORGE_CHECK(shape.num_heads > 0, "attention: num_heads must be positive, got ",
                 shape.num_heads);
  RECFORGE_CHECK(shape.num_kv_heads >= 0 && shape.num_heads % shape.kv_heads() == 0,
                 "attention: num_kv_heads ", shape.num_kv_heads, " must divide num_heads ",
                 shape.num_heads, " (0 means num_heads)");
  RECFORGE_CHECK(seqs.num_sequences >= 0 && seqs.num_tokens >= 0 && seqs.max_length >= 0,
                 "attention: bad packed batch (B=", seqs.num_sequences, ", N=", seqs.num_tokens,
                 ", T=", seqs.max_length, ")");
}

namespace cpu {
namespace {

// Query rows per tile: a thread's score panels are [kQueryRows, T] (T the sequence's length).
constexpr int kQueryRows = 64;

// Pointers to one query head and its key/value head of one sequence inside the packed
// [N, NH + 2·KV, HS] qkv layout.
template <typename T>
struct HeadView {
  T* q_base;       // qkv (or dqkv) row of the sequence's first token, at the query head
  T* k_base;       // ... at its key head
  T* v_base;       // ... at its value head
  int64_t stride;  // (NH + 2·KV)·HS between consecutive tokens
  T* q(int i) const { return q_base + i * stride; }
  T* k(int j) const { return k_base + j * stride; }
  T* v(int j) const { return v_base + j * stride; }
};

// The view of query head h (and kv head h / group) of the sequence whose first token's qkv row is
// `row`.
template <typename T>
HeadView<T> head_view(T* row, const AttentionShape& shape, int h) {
  const int HS = shape.head_size, KV = shape.kv_heads(), g = h / shape.group_size();
  return {row + static_cast<int64_t>(h) * HS, row + static_cast<int64_t>(shape.num_heads + g) * HS,
          row + static_cast<int64_t>(shape.num_heads + KV + g) * HS, shape.qkv_channels()};
}

// The longest sequence of the batch (the width of the score panels).
int longest_sequence(const PackedSequences& seqs) {
  int longest = 1;
  for (int b = 0; b < seqs.num_sequences; ++b) {
    longest = std::max(longest, seqs.offsets[b + 1] - seqs.offsets[b]);
  }
  return longest;
}

// The keys a query tile [q0, q0 + qn) sees: all of the sequence, or up to its last query (causal).
int visible_keys(AttentionMask mask, int q0, int qn, int length) {
  return mask == AttentionMask::kCausal ? q0 + qn : length;
}

// The keys query q0 + i sees inside a tile of kn keys.
int visible_in_row(AttentionMask mask, int q0, int i, int kn) {
  return mask == AttentionMask::kCausal ? q0 + i + 1 : kn;
}

// S[qn, kn] = scale · Q[q0 : q0 + qn] · K[0 : kn]ᵀ, one BLAS call.
template <typename T>
void tile_scores(T* S, const HeadView<const T>& in, int q0, int qn, int kn, int HS, T scale) {
  gemm(Transpose::kNo, Transpose::kYes, qn, kn, HS, scale, in.q(q0), static_cast<int>(in.stride),
       in.k(0), static_cast<int>(in.stride), T(0), S, kn);
}

// One query tile of one (sequence, head): each row of S becomes softmax probabilities (max, exp,
// sum, in that order), lse = max + log sum is saved, and out = P · V (one BLAS call).
template <typename T>
void forward_tile(const HeadView<const T>& in, T* out, T* lse, int64_t out_stride,
                  int64_t lse_stride, int length, int q0, int qn, int HS, T scale,
                  AttentionMask mask, T* P) {
  const int kn = visible_keys(mask, q0, qn, length);
  tile_scores(P, in, q0, qn, kn, HS, scale);
  for (int i = 0; i < qn; ++i) {
    T* row = P + static_cast<int64_t>(i) * kn;
    const int visible = visible_in_row(mask, q0, i, kn);
    const T row_max = *std::max_element(row, row + visible);
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < visible; ++j) {
      row[j] = vexp(row[j] - row_max);
      sum += row[j];
    }
    const T inverse = T(1) / sum;
#pragma omp simd
    for (int j = 0; j < visible; ++j) row[j] *= inverse;
    std::fill(row + visible, row + kn, T(0));
    lse[(q0 + i) * lse_stride] = row_max + std::log(sum);
  }
  gemm(Transpose::kNo, Transpose::kNo, qn, HS, kn, T(1), P, kn, in.v(0),
       static_cast<int>(in.stride), T(0), out + q0 * out_stride, static_cast<int>(out_stride));
}

// dP[qn, kn] = dO·Vᵀ and D_i: with `out` null (fp32, fp64), one BLAS call and D_i = Σ_j P_ij dP_ij
// — the tile holds every key a row sees, so D comes from the same products as dP, as autograd's
// softmax backward forms it, and a row with one key gets dS = 0 exactly. With `out` (the bf16
// policy: D from the stored, rounded out, as the GPU takes it) D_i = dout_i · out_i and dP by the
// same dot products, so a row with one key again gets dS = 0 exactly.
template <typename T>
void tile_output_gradients(T* dP, T* delta, const HeadView<const T>& in, const T* dout,
                           const T* out, const T* P, int64_t out_stride, int64_t lse_stride, int q0,
                           int qn, int kn, int HS) {
  const T* dout_tile = dout + q0 * out_stride;
  if (out == nullptr) {
    gemm(Transpose::kNo, Transpose::kYes, qn, kn, HS, T(1), dout_tile, static_cast<int>(out_stride),
         in.v(0), static_cast<int>(in.stride), T(0), dP, kn);
  }
  for (int i = 0; i < qn; ++i) {
    const T* dout_row = dout_tile + i * out_stride;
    T* dp = dP + static_cast<int64_t>(i) * kn;
    T row_delta = 0;
    if (out != nullptr) {
      for (int j = 0; j < kn; ++j) dp[j] = simd_dot(dout_row, in.v(j), HS);
      row_delta = simd_dot(dout_row, out + (q0 + i) * out_stride, HS);
    } else {
      const T* p = P + static_cast<int64_t>(i) * kn;
#pragma omp simd reduction(+ : row_delta)
      for (int j = 0; j < kn; ++j) row_delta += p[j] * dp[j];
    }
    delta[(q0 + i) * lse_stride] = row_delta;
  }
}

// One query tile's contribution to dq (its own rows), dk and dv (every visible key), recomputing
// P from the saved lse; BLAS calls for dV += Pᵀ·dO, dQ += dS·K and dK += dSᵀ·Q, with
// dS = P ⊙ (dP − D) · scale (tile_output_gradients).
template <typename T>
void backward_tile(const HeadView<const T>& in, const HeadView<T>& grad, const T* dout,
                   const T* out, const T* lse, T* delta, int64_t out_stride, int64_t lse_stride,
                   int length, int q0, int qn, int HS, T scale, AttentionMask mask, T* P, T* dP) {
  const int kn = visible_keys(mask, q0, qn, length);
  const int stride = static_cast<int>(in.stride), ldo = static_cast<int>(out_stride);
  tile_scores(P, in, q0, qn, kn, HS, scale);
  for (int i = 0; i < qn; ++i) {
    T* row = P + static_cast<int64_t>(i) * kn;
    const int visible = visible_in_row(mask, q0, i, kn);
    const T row_lse = lse[(q0 + i) * lse_stride];
#pragma omp simd
    for (int j = 0; j < visible; ++j) row[j] = vexp(row[j] - row_lse);
    std::fill(row + visible, row + kn, T(0));
  }
  gemm(Transpose::kYes, Transpose::kNo, kn, HS, qn, T(1), P, kn, dout + q0 * out_stride, ldo, T(1),
       grad.v(0), stride);
  tile_output_gradients(dP, delta, in, dout, out, P, out_stride, lse_stride, q0, qn, kn, HS);
  for (int i = 0; i < qn; ++i) {
    const T* p = P + static_cast<int64_t>(i) * kn;
    T* ds = dP + static_cast<int64_t>(i) * kn;
    const T row_delta = delta[(q0 + i) * lse_stride];
#pragma omp simd
    for (int j = 0; j < kn; ++j) ds[j] = p[j] * (ds[j] - row_delta) * scale;
  }
  gemm(Transpose::kNo, Transpose::kNo, qn, HS, kn, T(1), dP, kn, in.k(0), stride, T(1), grad.q(q0),
       stride);
  gemm(Transpose::kYes, Transpose::kNo, kn, HS, qn, T(1), dP, kn, in.q(q0), stride, T(1), grad.k(0),
       stride);
}

template <typename T>
void forward_heads(T* out, T* lse, const T* qkv, const PackedSequences& seqs,
                   const AttentionShape& shape) {
  const int NH = shape.num_heads, HS = shape.head_size, C = shape.channels();
  const int64_t qkv_stride = shape.qkv_channels();
  const T scale = T(1) / std::sqrt(T(HS));
#pragma omp parallel
  {
    std::vector<T> P(static_cast<size_t>(kQueryRows) * longest_sequence(seqs));
#pragma omp for schedule(dynamic) collapse(2)
    for (int b = 0; b < seqs.num_sequences; ++b) {
      for (int h = 0; h < NH; ++h) {
        const int begin = seqs.offsets[b], length = seqs.offsets[b + 1] - begin;
        const HeadView<const T> in = head_view(qkv + begin * qkv_stride, shape, h);
        T* out_head = out + static_cast<int64_t>(begin) * C + h * HS;
        T* lse_head = lse + static_cast<int64_t>(begin) * NH + h;
        for (int q0 = 0; q0 < length; q0 += kQueryRows) {
          forward_tile(in, out_head, lse_head, C, NH, length, q0, std::min(kQueryRows, length - q0),
                       HS, scale, shape.mask, P.data());
        }
      }
    }
  }
}

// Parallel over (sequence, kv head): the task of kv head g owns dk and dv of g and dq of the query
// heads of its group, which it visits in head order (and each head's query tiles in order), so
// every gradient element has one writer and a fixed order of accumulation. `out` null: D from the
// recomputed probabilities; else from out (tile_output_gradients).
template <typename T>
void backward_heads(T* dqkv, T* delta, const T* dout, const T* qkv, const T* out, const T* lse,
                    const PackedSequences& seqs, const AttentionShape& shape) {
  const int NH = shape.num_heads, HS = shape.head_size, C = shape.channels();
  const int KV = shape.kv_heads(), group = shape.group_size();
  const int64_t qkv_stride = shape.qkv_channels();
  const T scale = T(1) / std::sqrt(T(HS));
#pragma omp parallel
  {
    const size_t panel = static_cast<size_t>(kQueryRows) * longest_sequence(seqs);
    std::vector<T> P(panel), dP(panel);
#pragma omp for schedule(dynamic) collapse(2)
    for (int b = 0; b < seqs.num_sequences; ++b) {
      for (int g = 0; g < KV; ++g) {
        const int begin = seqs.offsets[b], length = seqs.offsets[b + 1] - begin;
        for (int h = g * group; h < (g + 1) * group; ++h) {
          const HeadView<const T> in = head_view(qkv + begin * qkv_stride, shape, h);
          const HeadView<T> grad = head_view(dqkv + begin * qkv_stride, shape, h);
          const T* dout_head = dout + static_cast<int64_t>(begin) * C + h * HS;
          const T* out_head = out ? out + static_cast<int64_t>(begin) * C + h * HS : nullptr;
          const T* lse_head = lse + static_cast<int64_t>(begin) * NH + h;
          T* delta_head = delta + static_cast<int64_t>(begin) * NH + h;
          for (int i = 0; i < length; ++i) {
            std::fill(grad.q(i), grad.q(i) + HS, T(0));
            if (h == g * group) {  // the group's first query head starts its kv head's sums
              std::fill(grad.k(i), grad.k(i) + HS, T(0));
              std::fill(grad.v(i), grad.v(i) + HS, T(0));
            }
          }
          for (int q0 = 0; q0 < length; q0 += kQueryRows) {
            backward_tile(in, grad, dout_head, out_head, lse_head, delta_head, C, NH, length, q0,
                          std::min(kQueryRows, length - q0), HS, scale, shape.mask, P.data(),
                          dP.data());
          }
        }
      }
    }
  }
}

// bf16 storage as a float copy (kernels/convert.h).
std::vector<float> widen(const bf16* x, int64_t n) {
  std::vector<float> wide(n);
  convert(wide.data(), x, n);
  return wide;
}

}  // namespace

template <typename A, typename T>
void attention_forward(A* out, T* lse, const A* qkv, const PackedSequences& seqs,
                       const AttentionShape& shape) {
  if constexpr (std::is_same_v<A, T>) {
    forward_heads(out, lse, qkv, seqs, shape);
  } else {
    const int64_t N = seqs.num_tokens, C = shape.channels(), QKV = shape.qkv_channels();
    std::vector<float> out_wide(N * C);
    forward_heads(out_wide.data(), lse, widen(qkv, N * QKV).data(), seqs, shape);
    convert(out, out_wide.data(), static_cast<int64_t>(out_wide.size()));
  }
}

// `out` is not read: D comes from the recomputed probabilities (backward_tile).
template <typename A, typename T>
void attention_backward(A* dqkv, T* delta, const A* dout, const A* qkv,
                        [[maybe_unused]] const A* out, const T* lse, const PackedSequences& seqs,
                        const AttentionShape& shape) {
  if constexpr (std::is_same_v<A, T>) {
    backward_heads(dqkv, delta, dout, qkv, static_cast<const T*>(nullptr), lse, seqs, shape);
  } else {
    const int64_t N = seqs.num_tokens, C = shape.channels(), QKV = shape.qkv_channels();
    std::vector<float> dqkv_wide(N * QKV);
    backward_heads(dqkv_wide.data(), delta, widen(dout, N * C).data(), widen(qkv, N * QKV).data(),
                   widen(out, N * C).data(), lse, seqs, shape);
    convert(dqkv, dqkv_wide.data(), static_cast<int64_t>(dqkv_wide.size()));
  }
}

#define RECFORGE_INSTANTIATE(A, T)                                                       \
  template void attention_forward<A, T>(A*, T*, const A*, const PackedSequences&,        \
                                        const AttentionShape&);                          \
  template void attention_backward<A, T>(A*, T*, const A*, const A*, const A*, const T*, \
                                         const PackedSequences&, const AttentionShape&);
RECFORGE_INSTANTIATE(float, float)
RECFORGE_INSTANTIATE(double, double)
RECFORGE_INSTANTIATE(bf16, float)
#undef RECFORGE_INSTANTIATE

}  // namespace cpu
}  // namespace recforge
