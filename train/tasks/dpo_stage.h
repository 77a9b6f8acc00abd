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
#pragma once

#include <optional>

#include "kernels/dpo_loss.h"
#include "train/config/config.h"
#include "train/tasks/preference_pairs.h"
#include "train/tasks/pretrain_task.h"
#include "train/tasks/stage_task.h"

namespace recforge {

class DpoStage : public StageTask {
 public:
  DpoStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
           const Dataset& data, const LeaveOneOutSplit& split, bool lora,
           const Distributed& distributed);

  size_t num_examples() const override { return pairs_.size(); }
  int32_t example_tokens(size_t pair) const override {
    return static_cast<int32_t>(pairs_[pair].prompt.size()) + 1;
  }
  int max_tokens() const override;
  void prepare(Decoder<float>& model) override;
  StepLosses train_step(Decoder<float>& model,
                        const std::vector<std::span<const uint32_t>>& micro_batches, int64_t step,
                        const DataShard& shard) override;
  Metrics evaluate(Decoder<float>& model, Split which) override {
    return ranking_.evaluate(model, which);
  }
  nlohmann::json final_report(Decoder<float>& model) override;
  nlohmann::json inference_state() const override { return ranking_.inference_state(); }

 private:
  int max_pairs() const;
  PackedBatch prompts(std::span<const uint32_t> pairs) const;
  // Candidate log-probabilities [pairs, K] into logps_ (lse_ and rows_ kept for the backward).
  void candidate_logps(Decoder<float>& model, const PackedBatch& host, const DeviceBatch& batch,
                       std::span<const uint32_t> pairs, float* logps);
  std::vector<float> reference_logps(Decoder<float>& model, std::span<const uint32_t> pairs);
  void precompute_reference(Decoder<float>& model);

  const RunConfig& config_;
  const StageSection& stage_;
  int32_t num_items_;
  bool lora_;
  Distributed distributed_;
  DpoParams params_;
  int K_;
  std::vector<PreferencePair> pairs_;
  std::vector<int32_t> candidates_;  // [pairs, K]
  std::vector<float> reference_;     // [pairs, K] when precomputed
  NextItemEvaluator ranking_;
  Buffer<float> rows_, drows_, logps_, reference_logps_, lse_, losses_, dpolicy_, metrics_;
  Buffer<int32_t> candidates_device_;
};

}  // namespace recforge
