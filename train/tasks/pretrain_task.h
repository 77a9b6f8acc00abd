// Pre-training (objective.type mbp_nbp | nbp | mbp): the PTUM objectives over windows of the
// training part, L = L_MBP + λ·L_NBP, each micro-batch's losses averaged over the step's
// micro-batches. Next-item ranking metrics on the held-out items (full ranking and sampled).
#pragma once

#include <memory>

#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/eval/next_item_evaluator.h"
#include "train/tasks/item_loss.h"
#include "train/tasks/stage_task.h"
#include "train/tasks/training_data.h"

namespace recforge {

class PretrainTask : public StageTask {
 public:
  PretrainTask(const RunConfig& config, const StageSection& stage, const Context& ctx,
               const Dataset& data, const LeaveOneOutSplit& split, const Distributed& distributed);

  size_t num_examples() const override { return windows_.size(); }
  int32_t example_tokens(size_t example) const override { return windows_.length(example); }
  int max_tokens() const override;
  StepLosses forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                              int64_t step, const DataShard& shard) override;
  Metrics evaluate(Decoder<float>& model, Split which) override {
    return evaluator_.evaluate(model, which);
  }
  nlohmann::json final_report(Decoder<float>& model) override {
    return evaluator_.final_report(model);
  }
  nlohmann::json inference_state() const override { return evaluator_.inference_state(); }

 private:
  // One objective's pass over the shard's part of micro-batch m of the step.
  struct Pass {
    MicroBatch micro;
    size_t m;
    int64_t step;
    float scale;        // the gradient's weight in the step's loss
    bool last_of_step;  // the step's last backward
  };
  uint64_t stream_of(int64_t step, size_t micro, int pass) const;
  std::vector<ItemSequence> sequences(std::span<const uint32_t> windows, bool cut_to_max_len) const;
  // The shard's part of the pass's loss; `tokens` counts the forward's.
  double next_items_pass(Decoder<float>& model, const Pass& pass, const DataShard& shard,
                         int64_t& tokens);
  double masked_items_pass(Decoder<float>& model, const Pass& pass, const DataShard& shard,
                           int64_t& tokens);
  // Forward, loss and backward of one objective batch; returns the loss times `part`.
  double run_pass(Decoder<float>& model, ItemLoss& loss, const ObjectiveBatch& batch,
                  const Pass& pass, AttentionMask mask, int stream, double part, int64_t& tokens);

  const RunConfig& config_;
  const StageSection& stage_;
  TrainingWindows windows_;
  std::unique_ptr<ItemLoss> nbp_loss_, mbp_loss_;
  NextItemEvaluator evaluator_;
};

}  // namespace recforge
