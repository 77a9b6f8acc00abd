#include "train/tasks/pretrain_task.h"

#include <algorithm>

#include "kernels/check.h"
#include "model/vocabulary.h"
#include "train/tasks/objectives.h"

namespace recforge {
namespace {

bool uses_nbp(const ObjectiveSection& objective) { return objective.type != ObjectiveType::kMbp; }
bool uses_mbp(const ObjectiveSection& objective) { return objective.type != ObjectiveType::kNbp; }

ItemLossConfig item_loss_config(const ObjectiveSection& objective, std::vector<float> k_weights) {
  return {objective.loss == ItemLossType::kSampledSoftmax, objective.negatives,
          objective.sampling == NegativeSampling::kPopularity, objective.temperature,
          std::move(k_weights)};
}

// Activations for a training micro-batch (windows of max_len + 1 items) or an evaluation batch.
int pretrain_max_tokens(const RunConfig& config, const StageSection& stage) {
  const int len = config.data.max_len;
  const int train = stage.train.token_budget > 0 ? std::max(stage.train.token_budget, len + 1)
                                                 : stage.train.batch_size * (len + 1);
  return std::max(train, stage.eval.batch_size * len);
}

}  // namespace

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
StepLosses PretrainTask::forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                                          int64_t step, const DataShard& shard) {
  const float share = 1.0f / static_cast<float>(micro.size());
  const float nbp_weight = mbp_loss_ ? stage_.objective.lambda : 1.0f;
  double loss_mbp = 0.0, loss_nbp = 0.0;
  StepLosses result;
  for (size_t m = 0; m < micro.size(); ++m) {
    const bool last_micro = m + 1 == micro.size();
    if (nbp_loss_) {
      const Pass pass{micro[m], m, step, share * nbp_weight, last_micro && !mbp_loss_};
      loss_nbp += share * next_items_pass(model, pass, shard, result.tokens);
    }
    if (mbp_loss_) {
      const Pass pass{micro[m], m, step, share, last_micro};
      loss_mbp += share * masked_items_pass(model, pass, shard, result.tokens);
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

double PretrainTask::run_pass(Decoder<float>& model, ItemLoss& loss, const ObjectiveBatch& batch,
                              const Pass& pass, AttentionMask mask, int stream, double part,
                              int64_t& tokens) {
  DeviceBatch device_batch(model.context().device(), batch.inputs, model.config());
  const uint64_t seed = config_.run.seed;
  model.forward(device_batch, {mask, true, seed ^ stream_of(pass.step, pass.m, stream)});
  const double value = loss.compute(model, batch, static_cast<float>(pass.scale * part), true, seed,
                                    stream_of(pass.step, pass.m, stream + 2));
  model.backward(device_batch, pass.last_of_step);
  tokens += batch.inputs.num_tokens();
  return value * part;
}

// The shard's part of one micro-batch's NBP loss (its counted targets over the micro-batch's).
double PretrainTask::next_items_pass(Decoder<float>& model, const Pass& pass,
                                     const DataShard& shard, int64_t& tokens) {
  const int K = stage_.objective.next_k, max_len = config_.data.max_len;
  const ObjectiveBatch batch =
      make_next_items_batch(sequences(shard.of(pass.micro), false), K, max_len);
  const double local = nbp_loss_->weighted_count(batch);
  const double whole = shard.world_size == 1 ? local
                                             : nbp_loss_->weighted_count(make_next_items_batch(
                                                   sequences(pass.micro, false), K, max_len));
  const double part = local > 0.0 ? local / whole : 0.0;
  return run_pass(model, *nbp_loss_, batch, pass, AttentionMask::kCausal, 0, part, tokens);
}

// The shard's part of one micro-batch's MBP loss; masks are keyed by each sequence's index in the
// whole micro-batch, so they do not depend on the number of ranks.
double PretrainTask::masked_items_pass(Decoder<float>& model, const Pass& pass,
                                       const DataShard& shard, int64_t& tokens) {
  const ObjectiveSection& objective = stage_.objective;
  const int max_len = config_.data.max_len;
  const uint64_t seed = config_.run.seed, stream = stream_of(pass.step, pass.m, 1);
  const ObjectiveBatch batch =
      make_masked_items_batch(sequences(shard.of(pass.micro), true), objective.mask_ratio, max_len,
                              seed, stream, shard.begin(pass.micro.size()));
  const double local = mbp_loss_->weighted_count(batch);
  const double whole =
      shard.world_size == 1
          ? local
          : mbp_loss_->weighted_count(make_masked_items_batch(
                sequences(pass.micro, true), objective.mask_ratio, max_len, seed, stream));
  const double part = local > 0.0 ? local / whole : 0.0;
  return run_pass(model, *mbp_loss_, batch, pass, AttentionMask::kBidirectional, 1, part, tokens);
}

}  // namespace recforge
