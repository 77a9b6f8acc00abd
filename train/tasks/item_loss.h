// The loss of item targets given the decoder's hidden states: softmax cross-entropy over the item
// vocabulary, either full (the fused classifier over the item rows of the tied embedding; no N×V
// logits kept) or sampled (P negatives shared by the batch, drawn uniformly or by training
// popularity, with the logQ correction s − log q(item) and the positive never counted as a
// negative). Logits are divided by the temperature τ.
//
// Normalization: with targets t_nk and per-k weights w_k, the loss is
//   L = Σ_{n,k valid} w_k · CE(n, t_nk) / Σ_{n,k valid} w_k,
// and compute(..., backward = true) writes gradient_scale · ∂L/∂hidden into the model's
// hidden_gradient() and adds gradient_scale · ∂L/∂(item rows) into its gradients
// (Decoder::item_row_gradients).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/buffer.h"
#include "model/decoder.h"
#include "train/tasks/objectives.h"

namespace recforge {

struct ItemLossConfig {
  bool sampled = false;
  int negatives = 128;      // sampled: P
  bool popularity = false;  // sampled: negatives drawn ∝ training counts (else uniform)
  float temperature = 1.0f;
  std::vector<float> k_weights;  // empty: every k weighs 1
};

class ItemLoss {
 public:
  // `train_counts` [num_items]: interactions per item in the training part (popularity sampling).
  ItemLoss(const Context& ctx, ItemLossConfig config, int32_t num_items,
           std::span<const int64_t> train_counts, int max_tokens);

  // Mean loss of the batch's targets over model.hidden() (after model.forward on batch.inputs).
  // With `backward`, also the gradients described above. `stream` keys the negatives' draw.
  double compute(Decoder<float>& model, const ObjectiveBatch& batch, float gradient_scale,
                 bool backward, uint64_t seed, uint64_t stream);
  // Σ of the batch's counted targets' weights: the denominator of compute()'s mean.
  double weighted_count(const ObjectiveBatch& batch) const;

 private:
  double full_softmax(Decoder<float>& model, const ObjectiveBatch& batch, float gradient_scale,
                      bool backward);
  double sampled_softmax(Decoder<float>& model, const ObjectiveBatch& batch, float gradient_scale,
                         bool backward, uint64_t seed, uint64_t stream);
  double nothing_counts(Decoder<float>& model, int N, bool backward) const;
  std::vector<int32_t> draw_negatives(uint64_t seed, uint64_t stream) const;
  float k_weight(int k) const;

  Context ctx_;
  ItemLossConfig config_;
  int32_t num_items_;
  std::vector<double> cumulative_;  // popularity sampling: cumulative probabilities [num_items]
  std::vector<float> log_q_;        // [num_items] log of each item's sampling probability
  Buffer<int32_t> targets_, negatives_;
  Buffer<float> losses_, log_q_positive_, log_q_negative_, scaled_hidden_;
};

}  // namespace recforge
