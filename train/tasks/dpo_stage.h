// Direct preference optimization (objective.type: dpo) of next-item recommendation. Each pair is
// a prompt — the next_item task token and a user's items before a training target — with K
// candidates: the chosen item (the true next item, or a highly rated one with pairs: rating) and
// K − 1 rejected items the user never interacts with (train/tasks/preference_pairs.h). The policy's
// log-probabilities of the candidates at the prompt's last position come from the fused
// candidate_logprobs kernel over the item rows of the tied output layer, the loss and its
// gradient from kernels/dpo_loss.h (sigmoid, ipo, hinge, robust, sdpo), normalised by the pairs of
// the optimizer step.
//
// The reference model is the stage's starting policy, frozen:
//   precompute_reference: true   its log-probabilities of every training pair are computed once
//                                before the first step and kept in the run directory
//                                (reference-<stage>.f32), so a resumed run reuses them;
//   precompute_reference: false  (LoRA only) the same model with its adapters disabled, run
//                                before each micro-batch's policy pass.
// The policy runs without dropout by default (disable_dropout, as TRL does): the reference is
// evaluated without it, and a dropout-noised policy would start with non-zero, noisy margins.
// Per step it logs rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
// logps/chosen and logps/rejected (means over the step's pairs; rejected: over the K − 1).
// Validation and test: next-item ranking with the task token as the prompt.
//
// Between a micro-batch's forward and backward nothing visits the host: the hidden rows at the
// prompts' last positions, the pairs' candidates and their precomputed reference rows are gathered
// on the device (kernels/rows.h) and ∂L/∂hidden is scattered back; the step's losses and statistics
// are downloaded once, after its last micro-batch.
#pragma once

#include <optional>

#include "kernels/dpo_loss.h"
#include "train/config/config.h"
#include "train/eval/next_item_evaluator.h"
#include "train/tasks/preference_pairs.h"
#include "train/tasks/stage_task.h"

namespace recforge {

class DpoStage : public StageTask {
 public:
  DpoStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
           const Dataset& data, const LeaveOneOutSplit& split, const Distributed& distributed);

  size_t num_examples() const override { return pairs_.size(); }
  int32_t example_tokens(size_t pair) const override {
    return static_cast<int32_t>(pairs_[pair].prompt.size()) + 1;
  }
  int max_tokens() const override;
  void prepare(Decoder<float>& model) override;
  StepLosses forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                              int64_t step, const DataShard& shard) override;
  Metrics evaluate(Decoder<float>& model, Split which) override {
    return ranking_.evaluate(model, which);
  }
  nlohmann::json final_report(Decoder<float>& model) override;
  nlohmann::json inference_state() const override { return ranking_.inference_state(); }

 private:
  int max_pairs() const;
  bool reference_precomputed() const { return stage_.objective.dpo.precompute_reference; }
  PackedBatch prompts(std::span<const uint32_t> pairs) const;
  // Uploads the pairs' indices and their prompts' last positions, and gathers their candidates
  // (and precomputed reference log-probabilities) on the device.
  void load_pairs(std::span<const uint32_t> pairs, const PackedBatch& host);
  // The loaded pairs' candidate log-probabilities [P, K] into `logps`, from the hidden states of
  // the last forward (rows_ and lse_ kept for the backward).
  void candidate_logps(Decoder<float>& model, int P, float* logps);
  void precompute_reference(Decoder<float>& model);
  // The step's losses and statistics from the `pairs` pairs this shard trained, over `total`.
  StepLosses step_losses(int pairs, size_t total) const;

  const RunConfig& config_;
  const StageSection& stage_;
  Context ctx_;
  int32_t num_items_;
  DpoParams params_;
  int K_;
  std::vector<PreferencePair> pairs_;
  NextItemEvaluator ranking_;
  bool writes_files_;  // rank 0 writes the precomputed reference
  // The device's copies: every pair's candidates [pairs, K] and, once precomputed, the reference
  // log-probabilities [pairs, K].
  Buffer<int32_t> candidates_;
  Buffer<float> reference_;
  // One micro-batch: pair indices [P], their last positions [P], candidates [P, K], reference
  // log-probabilities [P, K], last hidden rows and their gradients [P, C], lse [P], ∂L/∂logps.
  Buffer<int32_t> pair_index_, last_rows_, batch_candidates_;
  Buffer<float> batch_reference_, rows_, drows_, lse_, dpolicy_;
  // One step, every micro-batch's pairs end to end: logps [pairs, K], losses, metrics.
  Buffer<float> logps_, losses_, metrics_;
};

}  // namespace recforge
