// The two text objectives on one micro-batch (text_batches.h), forward through backward; the
// optimizer step is the trainer's.
//   SFT  L = Σ over the step's answer tokens of −log p(token) / step_tokens: the step's mean
//        answer-token cross-entropy, whatever the packing (each micro-batch adds its share);
//        prompt rows have no target, so ∂L/∂logits is zero on them.
//   DPO  per example, the answers' log-probabilities π (policy, adapters on, no dropout) against
//        the same micro-batch's reference log-probabilities ρ, computed once before training
//        (dpo_pair_loss of kernels/dpo_loss.h: sigmoid, ipo, hinge, robust, sdpo), averaged over
//        the step's examples; the backward runs Σ_s (−∂L/∂π_s) · CE_s through the model.
#pragma once

#include <span>
#include <vector>

#include "kernels/dpo_loss.h"
#include "model/llama/model.h"
#include "train/text/text_batches.h"

namespace recforge {

struct SftOptions {
  bool training = true;       // adapter dropout on
  uint64_t dropout_seed = 0;  // one per step
};

// Returns this micro-batch's share of the step's loss.
double sft_forward_backward(LlamaModel<float>& model, const TextBatch& batch, double step_tokens,
                            const SftOptions& options, bool last_of_step);

// Every sequence's answer log-probability, forward only (use_adapters false: the base model).
std::vector<double> answer_log_probs(LlamaModel<float>& model, const TextBatch& batch,
                                     bool use_adapters = true);

struct DpoSums {
  double loss = 0, chosen_reward = 0, rejected_reward = 0, margin = 0, accuracy = 0;
  int examples = 0;
  void add(const DpoSums& other);
};

// `reference` holds the batch's sequences' reference log-probabilities; loss_scale is 1 / the
// step's examples. Returns the batch's sums of the per-example loss and reward metrics.
DpoSums dpo_forward_backward(LlamaModel<float>& model, const TextBatch& batch,
                             std::span<const double> reference, const DpoParams& params,
                             double loss_scale, bool last_of_step);

}  // namespace recforge
