#include "train/pretrain_task.h"

#include <algorithm>

#include "kernels/check.h"
#include "model/vocabulary.h"
#include "train/evaluation.h"
#include "train/objectives.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

bool uses_nbp(const ObjectiveSection& objective) { return objective.type != "mbp"; }
bool uses_mbp(const ObjectiveSection& objective) { return objective.type != "nbp"; }

ItemLossConfig item_loss_config(const ObjectiveSection& objective, std::vector<float> k_weights) {
  return {objective.loss == "sampled_softmax", objective.negatives,
          objective.sampling == "popularity", objective.temperature, std::move(k_weights)};
}

// Activations for a training micro-batch (windows of max_len + 1 items) or an evaluation batch.
int pretrain_max_tokens(const RunConfig& config, const StageSection& stage) {
  const int len = config.data.max_len;
  const int train = stage.train.token_budget > 0 ? std::max(stage.train.token_budget, len + 1)
                                                 : stage.train.batch_size * (len + 1);
  return std::max(train, stage.eval.batch_size * len);
}

}  // namespace

NextItemEvaluator::NextItemEvaluator(const RunConfig& config, const StageSection& stage,
                                     const Dataset& data, const LeaveOneOutSplit& split,
                                     std::vector<int32_t> prompt, bool masked)
    : config_(config),
      stage_(stage),
      data_(data),
      train_counts_(split.train_item_counts()),
      prompt_(std::move(prompt)),
      masked_(masked),
      valid_(evaluation_cases(data, split, Split::kValid, stage.eval.exclude_history)),
      test_(evaluation_cases(data, split, Split::kTest, stage.eval.exclude_history)) {}

RankingMetrics NextItemEvaluator::evaluate(Decoder<float>& model, Split which,
                                           const std::string& protocol) {
  const EvalCases& cases = which == Split::kValid ? valid_ : test_;
  EvalOptions options;
  options.ks = stage_.eval.ks;
  options.batch_size = stage_.eval.batch_size;
  options.masked = masked_;
  options.prompt = prompt_;
  if (protocol == "full") {
    return evaluate_full_ranking(model, data_.num_items(), cases.cases, options);
  }
  const std::string name = which == Split::kValid ? "valid" : "test";
  const fs::path file =
      fs::path(config_.run.output_dir) / ("negatives-" + stage_.name + "-" + name + ".txt");
  std::vector<std::vector<int32_t>> negatives;
  if (fs::exists(file)) {
    negatives = load_negatives(file);
  } else {
    std::span<const int64_t> popularity;
    if (stage_.eval.sampled_by == "popularity") popularity = train_counts_;
    negatives = sample_eval_negatives(cases.cases, cases.user_items, data_.num_items(),
                                      stage_.eval.sampled_negatives, popularity,
                                      config_.run.seed + (which == Split::kTest));
    save_negatives(file, negatives);
  }
  return evaluate_sampled(model, cases.cases, negatives, options);
}

Metrics NextItemEvaluator::evaluate(Decoder<float>& model, Split which) {
  return evaluate(model, which, stage_.eval.protocol).as_map("");
}

nlohmann::json NextItemEvaluator::final_report(Decoder<float>& model) {
  nlohmann::json result = {{"num_items", data_.num_items()},
                           {"num_test_users", test_.cases.size()}};
  result["full_ranking_setting"] =
      stage_.eval.exclude_history
          ? "full ranking over all items, each user's earlier items excluded from the ranking"
          : "full ranking over all items, nothing excluded";
  for (Split which : {Split::kValid, Split::kTest}) {
    const std::string name = which == Split::kValid ? "valid" : "test";
    for (const auto& [k, v] : evaluate(model, which, "full").as_map(name)) result[k] = v;
    for (const auto& [k, v] : evaluate(model, which, "sampled").as_map(name + "_sampled")) {
      result[k] = v;
    }
  }
  result["sampled_setting"] = std::to_string(stage_.eval.sampled_negatives) + " " +
                              stage_.eval.sampled_by +
                              " negatives per user, never an item of the user, seeded and saved";
  return result;
}

nlohmann::json NextItemEvaluator::inference_state() const {
  return {{"inference", masked_ ? "masked" : "causal"}, {"prompt", prompt_}};
}

PretrainTask::PretrainTask(const RunConfig& config, const StageSection& stage, const Context& ctx,
                           const Dataset& data, const LeaveOneOutSplit& split)
    : config_(config),
      stage_(stage),
      windows_(split, data.num_users(), config.data.max_len + (uses_nbp(stage.objective) ? 1 : 0),
               config.data.sliding_windows, uses_nbp(stage.objective) ? 2 : 1),
      evaluator_(config, stage, data, split, {}, !uses_nbp(stage.objective)) {
  RECFORGE_CHECK(windows_.size() > 0, "the dataset at ", data.directory().string(),
                 " has no training sequence long enough for the objective");
  const ObjectiveSection& objective = stage.objective;
  const std::vector<int64_t> counts = split.train_item_counts();
  if (uses_nbp(objective)) {
    nbp_loss_ =
        std::make_unique<ItemLoss>(ctx, item_loss_config(objective, objective.next_k_weights),
                                   data.num_items(), counts, max_tokens());
  }
  if (uses_mbp(objective)) {
    mbp_loss_ = std::make_unique<ItemLoss>(ctx, item_loss_config(objective, {}), data.num_items(),
                                           counts, max_tokens());
  }
}

int PretrainTask::max_tokens() const { return pretrain_max_tokens(config_, stage_); }

// Keys the generator for one pass (0: NBP, 1: MBP, 2 and 3: negatives) of one micro-batch.
uint64_t PretrainTask::stream_of(int64_t step, size_t micro, int pass) const {
  return (static_cast<uint64_t>(step) << 24) ^ (static_cast<uint64_t>(micro) << 4) ^
         static_cast<uint64_t>(pass);
}

// L = L_MBP + λ·L_NBP, each averaged over the step's micro-batches.
StepLosses PretrainTask::train_step(Decoder<float>& model,
                                    const std::vector<std::span<const uint32_t>>& micro_batches,
                                    int64_t step) {
  const ObjectiveSection& objective = stage_.objective;
  const ModelConfig& model_config = model.config();
  const Context& ctx = model.context();
  const float share = 1.0f / static_cast<float>(micro_batches.size());
  const float nbp_weight = uses_mbp(objective) ? objective.lambda : 1.0f;
  const uint64_t seed = config_.run.seed;
  const int max_len = config_.data.max_len;
  double loss_mbp = 0.0, loss_nbp = 0.0;
  StepLosses result;
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    std::vector<ItemSequence> sequences;
    for (uint32_t window : micro_batches[m]) sequences.push_back(windows_.items(window));
    if (nbp_loss_) {
      ObjectiveBatch batch = make_next_items_batch(sequences, objective.next_k, max_len);
      DeviceBatch device_batch(ctx.device(), batch.inputs, model_config);
      model.forward(device_batch, {AttentionMask::kCausal, true, seed ^ stream_of(step, m, 0)});
      loss_nbp += share * nbp_loss_->compute(model, batch, share * nbp_weight, true, seed,
                                             stream_of(step, m, 2));
      model.backward(device_batch);
      result.tokens += batch.inputs.num_tokens();
    }
    if (mbp_loss_) {
      for (ItemSequence& s : sequences) {
        if (s.size() > static_cast<size_t>(max_len)) s = s.last(max_len);
      }
      ObjectiveBatch batch = make_masked_items_batch(sequences, objective.mask_ratio, max_len, seed,
                                                     stream_of(step, m, 1));
      DeviceBatch device_batch(ctx.device(), batch.inputs, model_config);
      model.forward(device_batch,
                    {AttentionMask::kBidirectional, true, seed ^ stream_of(step, m, 1)});
      loss_mbp +=
          share * mbp_loss_->compute(model, batch, share, true, seed, stream_of(step, m, 3));
      model.backward(device_batch);
      result.tokens += batch.inputs.num_tokens();
    }
  }
  result.loss = (mbp_loss_ ? loss_mbp : 0.0) + (nbp_loss_ ? nbp_weight * loss_nbp : 0.0);
  if (mbp_loss_) result.parts["loss_mbp"] = loss_mbp;
  if (nbp_loss_) result.parts["loss_nbp"] = loss_nbp;
  return result;
}

}  // namespace recforge
