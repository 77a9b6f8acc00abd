// Model FLOPs of one training step of the decoder: the arithmetic the model itself needs, the
// numerator of MFU (model FLOPs utilization = achieved model FLOP/s / the device's peak). What an
// implementation adds (recomputation in the backward, softmax, layer norms, GELU, AdamW and other
// elementwise work) is not counted, so the same number serves recforge and PyTorch.
//
// A multiply-add is 2 FLOPs. Forward, per token:
//   matmuls    2 · P_mm, where P_mm counts the weights of every matrix product:
//                P_mm = L · (4 + 2·mlp_ratio) · C² + V · C
//              (per layer qkv 3C², attention output C², MLP fc and proj mlp_ratio·C² each; then
//              the output layer tied to the token embedding, V·C). Biases, norms and the
//              embedding lookups are not matmuls and are left out.
//   attention  2 · 2 · T_eff · C per layer: q·kᵀ and P·v over all heads, T_eff the keys the token
//              attends to: i + 1 at position i under the causal mask, its sequence's length T_b
//              without it. Over a packed batch Σ T_eff = Σ_b T_b(T_b + 1)/2 (causal) or Σ_b T_b²,
//              so a full causal sequence of T tokens averages T_eff = (T + 1)/2.
// Training = 3 × forward (the backward takes twice the forward: gradients of the inputs and of
// the weights), the convention of PaLM (Chowdhery et al. 2022, appendix B). PaLM's per-token
// 6·N + 12·L·T·C counts all T keys for every token; halving for the causal mask, as here, makes
// the attention term 6·L·C·(T + 1).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/attention.h"
#include "model/config.h"

namespace recforge {

struct StepFlops {
  int64_t tokens = 0;             // N, the packed tokens of the batch
  int64_t matmul_parameters = 0;  // P_mm
  double attended_keys = 0;       // Σ over the tokens of T_eff
  double matmul = 0;              // forward matmul FLOPs of the batch: 2 · P_mm · N
  double attention = 0;           // forward attention FLOPs of the batch: 4 · L · C · Σ T_eff

  double forward() const { return matmul + attention; }
  double training() const { return 3.0 * forward(); }
};

// P_mm of `config`: the weights every token multiplies, the tied output layer included.
int64_t matmul_parameters(const ModelConfig& config);

// Σ over the tokens of the keys each attends to, for sequences of `lengths` under `mask`.
double attended_keys(std::span<const int32_t> lengths, AttentionMask mask);

// The FLOPs of one training step (forward, loss, backward) over sequences of `lengths`.
StepFlops train_step_flops(const ModelConfig& config, std::span<const int32_t> lengths,
                           AttentionMask mask);

}  // namespace recforge
