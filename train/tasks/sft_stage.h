// Supervised fine-tuning (objective.type: sft): one task's token templates
// (train/tasks/sft_tasks.h), softmax cross-entropy over the whole vocabulary at the answer position
// only, the loss normalised by the number of answers in the optimizer step (all its micro-batches
// together).
//
// Evaluation by task:
//   next_item   ranking of the held-out item (full and sampled protocols) with the task token
//               as the prompt, on the leave-one-out split: hr@K, ndcg@K, mrr;
//   preference  AUC of logit(YES) − logit(NO) against the held-out likes: auc, accuracy;
//   rating      the expected rating Σ_r p(r)·r over the five rating tokens: rmse, mae.
// The held-out parts come from data.split: leave_one_out (each user's last two events) or
// chronological (each user's last 10% valid, the 10% before them... see train/data/event_split.h).
#pragma once

#include <memory>
#include <optional>

#include "train/config/config.h"
#include "train/data/event_split.h"
#include "train/eval/next_item_evaluator.h"
#include "train/tasks/sft_tasks.h"
#include "train/tasks/stage_task.h"

namespace recforge {

class SftStage : public StageTask {
 public:
  SftStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
           const Dataset& data, const LeaveOneOutSplit& split, const Distributed& distributed);

  size_t num_examples() const override { return train_.size(); }
  int32_t example_tokens(size_t example) const override {
    return static_cast<int32_t>(train_[example].prompt.size());
  }
  int max_tokens() const override;
  StepLosses forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                              int64_t step, const DataShard& shard) override;
  Metrics evaluate(Decoder<float>& model, Split which) override;
  nlohmann::json final_report(Decoder<float>& model) override;
  nlohmann::json inference_state() const override;

 private:
  // Adds the batch's answers' −log p(answer | prompt) to `sum`, writes scale · ∂L/∂hidden and
  // accumulates scale · ∂L/∂wte; an empty batch adds nothing.
  void add_answer_losses(Decoder<float>& model, const DeviceBatch& batch, float scale, double& sum);
  // The logits of the 16 special tokens at each example's answer position [examples, 16].
  std::vector<float> answer_logits(Decoder<float>& model, const std::vector<SftExample>& examples);
  Metrics score(Decoder<float>& model, const std::vector<SftExample>& examples);

  const RunConfig& config_;
  const StageSection& stage_;
  SftTask task_;
  EventSplit events_;
  std::vector<SftExample> train_, valid_, test_;
  std::optional<NextItemEvaluator> ranking_;  // next_item only
  Buffer<float> losses_;
};

}  // namespace recforge
