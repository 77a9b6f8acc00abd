#include "train/tasks/pretrain_task.h"

#include <algorithm>

#include "kernels/check.h"
#include "model/vocabulary.h"
#include "train/eval/evaluation.h"
#include "train/tasks/objectives.h"

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
                                     std::vector<int32_t> prompt, bool masked,
                                     const Distributed& distributed)
    : config_(config),
      stage_(stage),
      data_(data),
      train_counts_(split.train_item_counts()),
      prompt_(std::move(prompt)),
      masked_(masked),
      distributed_(distributed),
      valid_(evaluation_cases(data, split, Split::kValid, stage.eval.exclude_history)),
      test_(evaluation_cases(data, split, Split::kTest, stage.eval.exclude_history)) {}

namespace {

// Every world_size-th element from `rank` on.
template <typename T>
std::vector<T> every_nth(const std::vector<T>& all, const DataShard& shard) {
  std::vector<T> mine;
  for (size_t i = shard.rank; i < all.size(); i += shard.world_size) mine.push_back(all[i]);
  return mine;
}

}  // namespace

RankingMetrics NextItemEvaluator::evaluate(Decoder<float>& model, Split which,
                                           const std::string& protocol) {
  const EvalCases& all = which == Split::kValid ? valid_ : test_;
  EvalOptions options;
  options.ks = stage_.eval.ks;
  options.batch_size = stage_.eval.batch_size;
  options.masked = masked_;
  options.prompt = prompt_;
  const DataShard& shard = distributed_.shard;
  const std::vector<EvalCase> cases = every_nth(all.cases, shard);
  auto summed = [&](RankingMetrics local) {
    if (!distributed_.parallel()) return local;
    std::vector<double> sums = local.sums();
    distributed_.sum(sums);
    RankingMetrics total(stage_.eval.ks);
    total.add_sums(sums);
    return total;
  };
  if (protocol == "full") {
    return summed(evaluate_full_ranking(model, data_.num_items(), cases, options));
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
    negatives = sample_eval_negatives(all.cases, all.user_items, data_.num_items(),
                                      stage_.eval.sampled_negatives, popularity,
                                      config_.run.seed + (which == Split::kTest));
    if (distributed_.writes_files()) save_negatives(file, negatives);
  }
  return summed(evaluate_sampled(model, cases, every_nth(negatives, shard), options));
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
                           const Dataset& data, const LeaveOneOutSplit& split,
                           const Distributed& distributed)
    : config_(config),
      stage_(stage),
      windows_(split, data.num_users(), config.data.max_len + (uses_nbp(stage.objective) ? 1 : 0),
               config.data.sliding_windows, uses_nbp(stage.objective) ? 2 : 1),
      evaluator_(config, stage, data, split, {}, !uses_nbp(stage.objective), distributed) {
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

// L = L_MBP + λ·L_NBP, each averaged over the step's micro-batches. A shard's losses are scaled
// by its share of the micro-batch's counted targets, so the shards add up to the whole.
StepLosses PretrainTask::train_step(Decoder<float>& model,
                                    const std::vector<std::span<const uint32_t>>& micro_batches,
                                    int64_t step, const DataShard& shard) {
  const ObjectiveSection& objective = stage_.objective;
  const float share = 1.0f / static_cast<float>(micro_batches.size());
  const float nbp_weight = uses_mbp(objective) ? objective.lambda : 1.0f;
  double loss_mbp = 0.0, loss_nbp = 0.0;
  StepLosses result;
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const std::span<const uint32_t> examples = shard.of(micro_batches[m]);
    if (examples.empty()) continue;
    if (nbp_loss_) {
      loss_nbp += share * next_items_pass(model, micro_batches[m], shard, step, m,
                                          share * nbp_weight, result.tokens);
    }
    if (mbp_loss_) {
      loss_mbp +=
          share * masked_items_pass(model, micro_batches[m], shard, step, m, share, result.tokens);
    }
  }
  result.loss = (mbp_loss_ ? loss_mbp : 0.0) + (nbp_loss_ ? nbp_weight * loss_nbp : 0.0);
  if (mbp_loss_) result.parts["loss_mbp"] = loss_mbp;
  if (nbp_loss_) result.parts["loss_nbp"] = loss_nbp;
  return result;
}

std::vector<ItemSequence> PretrainTask::sequences(std::span<const uint32_t> windows,
                                                  bool cut_to_max_len) const {
  std::vector<ItemSequence> result;
  for (uint32_t window : windows) {
    ItemSequence s = windows_.items(window);
    const size_t max_len = static_cast<size_t>(config_.data.max_len);
    if (cut_to_max_len && s.size() > max_len) s = s.last(max_len);
    result.push_back(s);
  }
  return result;
}

// The shard's part of one micro-batch's NBP loss (its counted targets over the micro-batch's).
double PretrainTask::next_items_pass(Decoder<float>& model, std::span<const uint32_t> micro,
                                     const DataShard& shard, int64_t step, size_t m, float scale,
                                     int64_t& tokens) {
  const int K = stage_.objective.next_k, max_len = config_.data.max_len;
  const ObjectiveBatch batch = make_next_items_batch(sequences(shard.of(micro), false), K, max_len);
  const double local = nbp_loss_->weighted_count(batch);
  const double whole =
      shard.world_size == 1
          ? local
          : nbp_loss_->weighted_count(make_next_items_batch(sequences(micro, false), K, max_len));
  if (local == 0.0) return 0.0;
  const double part = local / whole;
  DeviceBatch device_batch(model.context().device(), batch.inputs, model.config());
  const uint64_t seed = config_.run.seed;
  model.forward(device_batch, {AttentionMask::kCausal, true, seed ^ stream_of(step, m, 0)});
  const double loss = nbp_loss_->compute(model, batch, static_cast<float>(scale * part), true, seed,
                                         stream_of(step, m, 2));
  model.backward(device_batch);
  tokens += batch.inputs.num_tokens();
  return loss * part;
}

// The shard's part of one micro-batch's MBP loss; masks are keyed by each sequence's index in the
// whole micro-batch, so they do not depend on the number of ranks.
double PretrainTask::masked_items_pass(Decoder<float>& model, std::span<const uint32_t> micro,
                                       const DataShard& shard, int64_t step, size_t m, float scale,
                                       int64_t& tokens) {
  const ObjectiveSection& objective = stage_.objective;
  const int max_len = config_.data.max_len;
  const uint64_t seed = config_.run.seed;
  const ObjectiveBatch batch =
      make_masked_items_batch(sequences(shard.of(micro), true), objective.mask_ratio, max_len, seed,
                              stream_of(step, m, 1), shard.begin(micro.size()));
  const double local = mbp_loss_->weighted_count(batch);
  const double whole = shard.world_size == 1 ? local
                                             : mbp_loss_->weighted_count(make_masked_items_batch(
                                                   sequences(micro, true), objective.mask_ratio,
                                                   max_len, seed, stream_of(step, m, 1)));
  if (local == 0.0) return 0.0;
  const double part = local / whole;
  DeviceBatch device_batch(model.context().device(), batch.inputs, model.config());
  model.forward(device_batch, {AttentionMask::kBidirectional, true, seed ^ stream_of(step, m, 1)});
  const double loss = mbp_loss_->compute(model, batch, static_cast<float>(scale * part), true, seed,
                                         stream_of(step, m, 3));
  model.backward(device_batch);
  tokens += batch.inputs.num_tokens();
  return loss * part;
}

}  // namespace recforge
