// Pre-training (objective.type mbp_nbp | nbp | mbp): the PTUM objectives over windows of the
// training part, L = L_MBP + λ·L_NBP, each micro-batch's losses averaged over the step's
// micro-batches. Next-item ranking metrics on the held-out items (full ranking and sampled).
#pragma once

#include <filesystem>
#include <memory>

#include "train/config/config.h"
#include "train/data/dataset.h"
#include "train/eval/eval_cases.h"
#include "train/tasks/item_loss.h"
#include "train/tasks/stage_task.h"
#include "train/tasks/training_data.h"

namespace recforge {

// Ranking evaluation shared by the tasks that predict the next item: validation/test cases of the
// leave-one-out split, full ranking or the sampled protocol (negatives saved in the run
// directory), and the final report of both protocols.
class NextItemEvaluator {
 public:
  // With several ranks each evaluates every world_size-th case and the sums are added up.
  NextItemEvaluator(const RunConfig& config, const StageSection& stage, const Dataset& data,
                    const LeaveOneOutSplit& split, std::vector<int32_t> prompt, bool masked,
                    const Distributed& distributed);
  RankingMetrics evaluate(Decoder<float>& model, Split which, const std::string& protocol);
  Metrics evaluate(Decoder<float>& model, Split which);
  nlohmann::json final_report(Decoder<float>& model);
  nlohmann::json inference_state() const;

 private:
  const RunConfig& config_;
  const StageSection& stage_;
  const Dataset& data_;
  std::vector<int64_t> train_counts_;
  std::vector<int32_t> prompt_;
  bool masked_;
  Distributed distributed_;
  EvalCases valid_, test_;
};

class PretrainTask : public StageTask {
 public:
  PretrainTask(const RunConfig& config, const StageSection& stage, const Context& ctx,
               const Dataset& data, const LeaveOneOutSplit& split, const Distributed& distributed);

  size_t num_examples() const override { return windows_.size(); }
  int32_t example_tokens(size_t example) const override { return windows_.length(example); }
  int max_tokens() const override;
  int backward_passes(const std::vector<std::span<const uint32_t>>& micro_batches,
                      const DataShard& shard) const override {
    const int objectives = (nbp_loss_ ? 1 : 0) + (mbp_loss_ ? 1 : 0);
    return objectives * StageTask::backward_passes(micro_batches, shard);
  }
  StepLosses train_step(Decoder<float>& model,
                        const std::vector<std::span<const uint32_t>>& micro_batches, int64_t step,
                        const DataShard& shard) override;
  Metrics evaluate(Decoder<float>& model, Split which) override {
    return evaluator_.evaluate(model, which);
  }
  nlohmann::json final_report(Decoder<float>& model) override {
    return evaluator_.final_report(model);
  }
  nlohmann::json inference_state() const override { return evaluator_.inference_state(); }

 private:
  uint64_t stream_of(int64_t step, size_t micro, int pass) const;
  std::vector<ItemSequence> sequences(std::span<const uint32_t> windows, bool cut_to_max_len) const;
  double next_items_pass(Decoder<float>& model, std::span<const uint32_t> micro,
                         const DataShard& shard, int64_t step, size_t m, float scale,
                         int64_t& tokens);
  double masked_items_pass(Decoder<float>& model, std::span<const uint32_t> micro,
                           const DataShard& shard, int64_t step, size_t m, float scale,
                           int64_t& tokens);

  const RunConfig& config_;
  const StageSection& stage_;
  ModelConfig model_config_;
  TrainingWindows windows_;
  std::unique_ptr<ItemLoss> nbp_loss_, mbp_loss_;
  NextItemEvaluator evaluator_;
};

}  // namespace recforge
