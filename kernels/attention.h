// Multi-head scaled dot-product attention over packed variable-length sequences, flash style, with
// grouped-query attention (GQA): NH query heads share KV ≤ NH key/value heads, NH % KV == 0.
//
// Layout (row-major):
//   qkv  [N, NH + 2·KV, HS]  per token: the NH query heads, then the KV key heads, then the KV
//                            value heads (KV = NH is the classic [N, 3, NH, HS])
//   out  [N, NH, HS]         softmax(q·kᵀ/√HS) · v for each query head, within the token's own
//                            sequence; query head h reads key/value head h / (NH / KV)
//   lse  [N, NH]             log Σ_j exp(q·k_j/√HS), saved by the forward for the backward
// Sequence b holds the tokens offsets[b] .. offsets[b+1]; tokens never attend across sequences.
// Causal: token i attends to the tokens j <= i of its sequence; bidirectional: to all of them.
//
// Forward (CUDA): for a tile of queries, stream over tiles of keys keeping a running max m, running
// sum l and an unnormalized output accumulator (online softmax); out = acc / l and lse = m + log l.
// No score matrix larger than one tile exists, and K/V are never repeated in memory. The CPU
// backend takes 64 queries at a time against every key they see, as BLAS products: the scores
// panel [64, T] = Q·Kᵀ, its exact row softmax, out = P·V (a per-thread panel of 64 × T scores,
// T the longest sequence). Backward
// recomputes each probability from the saved lse, P_ij = exp(q_i·k_j/√HS − lse_i), and with
// D_i = Σ_d dout_i ⊙ out_i:
//   dv_j += Σ_i P_ij dout_i,   dS_ij = P_ij (dout_i·v_j − D_i),
//   dq_i += Σ_j dS_ij k_j / √HS,   dk_j += Σ_i dS_ij q_i / √HS,
// where dk and dv of a key/value head also sum over the query heads of its group, in head order
// (each kv head's gradients have one writer: deterministic, no atomics). dqkv has qkv's layout.
// On the CPU the backward's five products per query tile are BLAS calls too (dV += Pᵀ·dO,
// dP = dO·Vᵀ, dQ += dS·K, dK += dSᵀ·Q), the query tiles of a head visited in order.
// Every row has at least one key (itself), so no row is ever empty and no NaN can appear;
// sequences of length 0 contribute nothing. D comes from the stored out (with bf16 storage the
// rounded out, as the backward sees it), except in the CPU's fp32 and fp64 backward, whose query
// tiles hold every key a row sees: there D_i = Σ_j P_ij (dout_i·v_j), the sum autograd's softmax
// backward forms.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/bf16.h"
#include "kernels/context.h"
#include "kernels/dispatch.h"

namespace recforge {

enum class AttentionMask { kCausal, kBidirectional };

struct PackedSequences {
  const int32_t* offsets = nullptr;  // [num_sequences + 1] on the kernel's device, offsets[0] = 0
  int num_sequences = 0;             // B
  int num_tokens = 0;                // N = offsets[B]
  int max_length = 0;                // T, the longest sequence (sizes the CUDA grid)
};

struct AttentionShape {
  int num_heads = 0;  // NH, query heads
  int head_size = 0;  // HS ∈ {32, 64, 128}
  AttentionMask mask = AttentionMask::kCausal;
  int num_kv_heads = 0;  // KV, key/value heads; 0 means NH (no grouping)
  int kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int group_size() const { return num_heads / kv_heads(); }  // query heads per kv head
  int channels() const { return num_heads * head_size; }     // of out, dout: NH·HS
  int qkv_channels() const { return (num_heads + 2 * kv_heads()) * head_size; }  // of qkv, dqkv
};

// Storage: A is the element type of qkv, out, dout and dqkv; lse and delta are T. Either A = T
// (float or double), or A = bf16 with T = float (the bf16 precision policy): the math stays fp32,
// bf16 values are widened on load and the outputs rounded once on store.
template <typename A, typename T>
inline constexpr bool kAttentionStorage = std::is_same_v<A, T> ||
                                          (std::is_same_v<A, bf16> && std::is_same_v<T, float>);

namespace cpu {
// bf16: widens the inputs to float, runs the float implementation, rounds out (dqkv) once.
template <typename A, typename T>
void attention_forward(A* out, T* lse, const A* qkv, const PackedSequences& seqs,
                       const AttentionShape& shape);
// dqkv [N, NH + 2·KV, HS] is overwritten. delta [N, NH] is scratch for D.
template <typename A, typename T>
void attention_backward(A* dqkv, T* delta, const A* dout, const A* qkv, const A* out, const T* lse,
                        const PackedSequences& seqs, const AttentionShape& shape);
}  // namespace cpu

namespace cuda {
// A ∈ {float, bf16}.
template <typename A>
void attention_forward(const Context& ctx, A* out, float* lse, const A* qkv,
                       const PackedSequences& seqs, const AttentionShape& shape);
template <typename A>
void attention_backward(const Context& ctx, A* dqkv, float* delta, const A* dout, const A* qkv,
                        const A* out, const float* lse, const PackedSequences& seqs,
                        const AttentionShape& shape);
}  // namespace cuda

void validate_attention(const PackedSequences& seqs, const AttentionShape& shape);

template <typename A, typename T>
void attention_forward(const Context& ctx, A* out, T* lse, const A* qkv,
                       const PackedSequences& seqs, const AttentionShape& shape) {
  static_assert(kAttentionStorage<A, T>, "attention: storage must be T, or bf16 with T = float");
  validate_attention(seqs, shape);
  dispatch<std::is_same_v<T, float>>(
      ctx, "attention_forward",
      [&](const auto& on) { cuda::attention_forward(on, out, lse, qkv, seqs, shape); },
      [&] { cpu::attention_forward(out, lse, qkv, seqs, shape); });
}

template <typename A, typename T>
void attention_backward(const Context& ctx, A* dqkv, T* delta, const A* dout, const A* qkv,
                        const A* out, const T* lse, const PackedSequences& seqs,
                        const AttentionShape& shape) {
  static_assert(kAttentionStorage<A, T>, "attention: storage must be T, or bf16 with T = float");
  validate_attention(seqs, shape);
  dispatch<std::is_same_v<T, float>>(
      ctx, "attention_backward",
      [&](const auto& on) {
        cuda::attention_backward(on, dqkv, delta, dout, qkv, out, lse, seqs, shape);
      },
      [&] { cpu::attention_backward(dqkv, delta, dout, qkv, out, lse, seqs, shape); });
}

}  // namespace recforge
