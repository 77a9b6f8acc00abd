#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/convert.h"

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

constexpr int kQueryTile = 32;
constexpr int kKeyTile = 64;

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

// A SIMD reduction: the vector lanes sum in a fixed order, so the result is the same on every run
// of a given build.
template <typename T>
T dot(const T* a, const T* b, int n) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

template <typename T>
void axpy(T* y, T alpha, const T* x, int n) {
#pragma omp simd
  for (int d = 0; d < n; ++d) y[d] += alpha * x[d];
}

bool masked(AttentionMask mask, int query, int key) {
  return mask == AttentionMask::kCausal && key > query;
}

// One query tile [q0, q0 + qn) of one (sequence, head): online softmax over key tiles.
template <typename T>
void forward_query_tile(const HeadView<const T>& in, T* out, T* lse, int64_t out_stride,
                        int64_t lse_stride, int length, int q0, int qn, int HS, T scale,
                        AttentionMask mask) {
  T running_max[kQueryTile], running_sum[kQueryTile], acc[kQueryTile][128];
  T scores[kQueryTile][kKeyTile];
  for (int i = 0; i < qn; ++i) {
    running_max[i] = -std::numeric_limits<T>::infinity();
    running_sum[i] = 0;
    std::fill(acc[i], acc[i] + HS, T(0));
  }
  int key_end = mask == AttentionMask::kCausal ? q0 + qn : length;
  for (int k0 = 0; k0 < key_end; k0 += kKeyTile) {
    int kn = std::min(kKeyTile, key_end - k0);
    for (int i = 0; i < qn; ++i) {
      T tile_max = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < kn; ++j) {
        bool skip = masked(mask, q0 + i, k0 + j);
        scores[i][j] = skip ? -std::numeric_limits<T>::infinity()
                            : scale * dot(in.q(q0 + i), in.k(k0 + j), HS);
        tile_max = std::max(tile_max, scores[i][j]);
      }
      if (tile_max == -std::numeric_limits<T>::infinity()) continue;  // no key of this tile
      T new_max = std::max(running_max[i], tile_max);
      T correction = std::exp(running_max[i] - new_max);  // exp(−∞) = 0 on the first tile
      running_sum[i] *= correction;
      for (int d = 0; d < HS; ++d) acc[i][d] *= correction;
      for (int j = 0; j < kn; ++j) {
        T p = std::exp(scores[i][j] - new_max);  // 0 for masked keys
        running_sum[i] += p;
        axpy(acc[i], p, in.v(k0 + j), HS);
      }
      running_max[i] = new_max;
    }
  }
  for (int i = 0; i < qn; ++i) {
    T* out_row = out + (q0 + i) * out_stride;
    for (int d = 0; d < HS; ++d) out_row[d] = acc[i][d] / running_sum[i];
    lse[(q0 + i) * lse_stride] = running_max[i] + std::log(running_sum[i]);
  }
}

// One key tile [k0, k0 + kn) against one query tile [q0, q0 + qn): recomputes P and accumulates
// dq, dk, dv of this (sequence, head).
template <typename T>
void backward_tile_pair(const HeadView<const T>& in, const HeadView<T>& grad, const T* dout,
                        const T* lse, const T* delta, int64_t out_stride, int64_t lse_stride,
                        int q0, int qn, int k0, int kn, int HS, T scale, AttentionMask mask) {
  for (int i = 0; i < qn; ++i) {
    const T* q = in.q(q0 + i);
    const T* dout_row = dout + (q0 + i) * out_stride;
    T row_lse = lse[(q0 + i) * lse_stride], row_delta = delta[(q0 + i) * lse_stride];
    for (int j = 0; j < kn; ++j) {
      if (masked(mask, q0 + i, k0 + j)) continue;
      T p = std::exp(scale * dot(q, in.k(k0 + j), HS) - row_lse);
      axpy(grad.v(k0 + j), p, dout_row, HS);
      T dscore = p * (dot(dout_row, in.v(k0 + j), HS) - row_delta) * scale;
      axpy(grad.q(q0 + i), dscore, in.k(k0 + j), HS);
      axpy(grad.k(k0 + j), dscore, q, HS);
    }
  }
}

template <typename T>
void forward_heads(T* out, T* lse, const T* qkv, const PackedSequences& seqs,
                   const AttentionShape& shape) {
  const int NH = shape.num_heads, HS = shape.head_size, C = shape.channels();
  const int64_t qkv_stride = shape.qkv_channels();
  const T scale = T(1) / std::sqrt(T(HS));
#pragma omp parallel for schedule(dynamic) collapse(2)
  for (int b = 0; b < seqs.num_sequences; ++b) {
    for (int h = 0; h < NH; ++h) {
      int begin = seqs.offsets[b], length = seqs.offsets[b + 1] - begin;
      HeadView<const T> in = head_view(qkv + begin * qkv_stride, shape, h);
      T* out_head = out + static_cast<int64_t>(begin) * C + h * HS;
      T* lse_head = lse + static_cast<int64_t>(begin) * NH + h;
      for (int q0 = 0; q0 < length; q0 += kQueryTile) {
        forward_query_tile(in, out_head, lse_head, C, NH, length, q0,
                           std::min(kQueryTile, length - q0), HS, scale, shape.mask);
      }
    }
  }
}

// Parallel over (sequence, kv head): the task of kv head g owns dk and dv of g and dq of the query
// heads of its group, which it visits in head order, so every gradient element has one writer and
// a fixed order of accumulation.
template <typename T>
void backward_heads(T* dqkv, T* delta, const T* dout, const T* qkv, const T* out, const T* lse,
                    const PackedSequences& seqs, const AttentionShape& shape) {
  const int NH = shape.num_heads, HS = shape.head_size, C = shape.channels();
  const int KV = shape.kv_heads(), group = shape.group_size();
  const int64_t qkv_stride = shape.qkv_channels();
  const T scale = T(1) / std::sqrt(T(HS));
#pragma omp parallel for schedule(dynamic) collapse(2)
  for (int b = 0; b < seqs.num_sequences; ++b) {
    for (int g = 0; g < KV; ++g) {
      int begin = seqs.offsets[b], length = seqs.offsets[b + 1] - begin;
      for (int h = g * group; h < (g + 1) * group; ++h) {
        HeadView<const T> in = head_view(qkv + begin * qkv_stride, shape, h);
        HeadView<T> grad = head_view(dqkv + begin * qkv_stride, shape, h);
        const T* dout_head = dout + static_cast<int64_t>(begin) * C + h * HS;
        const T* out_head = out + static_cast<int64_t>(begin) * C + h * HS;
        const T* lse_head = lse + static_cast<int64_t>(begin) * NH + h;
        T* delta_head = delta + static_cast<int64_t>(begin) * NH + h;
        for (int i = 0; i < length; ++i) {
          delta_head[i * NH] = dot(dout_head + i * C, out_head + i * C, HS);
          std::fill(grad.q(i), grad.q(i) + HS, T(0));
          if (h == g * group) {  // the group's first query head starts its kv head's sums
            std::fill(grad.k(i), grad.k(i) + HS, T(0));
            std::fill(grad.v(i), grad.v(i) + HS, T(0));
          }
        }
        for (int k0 = 0; k0 < length; k0 += kKeyTile) {
          int kn = std::min(kKeyTile, length - k0);
          int first_query = shape.mask == AttentionMask::kCausal ? k0 / kQueryTile * kQueryTile : 0;
          for (int q0 = first_query; q0 < length; q0 += kQueryTile) {
            backward_tile_pair(in, grad, dout_head, lse_head, delta_head, C, NH, q0,
                               std::min(kQueryTile, length - q0), k0, kn, HS, scale, shape.mask);
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

template <typename A, typename T>
void attention_backward(A* dqkv, T* delta, const A* dout, const A* qkv, const A* out, const T* lse,
                        const PackedSequences& seqs, const AttentionShape& shape) {
  if constexpr (std::is_same_v<A, T>) {
    backward_heads(dqkv, delta, dout, qkv, out, lse, seqs, shape);
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
