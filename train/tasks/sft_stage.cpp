#include "train/tasks/sft_stage.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/classifier.h"
#include "model/vocabulary.h"
#include "train/eval/task_metrics.h"

namespace recforge {
namespace {

EventSplit event_split(const RunConfig& config, const Dataset& data) {
  if (config.data.split == SplitProtocol::kChronological) {
    return EventSplit::chronological(data, {});
  }
  return EventSplit::leave_one_out(data);
}

SftOptions sft_options(const RunConfig& config, const StageSection& stage) {
  SftOptions options;
  options.max_len = config.data.max_len;
  options.like_threshold = static_cast<float>(stage.objective.like_threshold);
  options.max_train_examples_per_user = stage.objective.examples_per_user;
  options.seed = config.run.seed;
  return options;
}

// The task's prompt for ranking evaluation: its task token before the history.
std::vector<int32_t> next_item_prompt() { return {kTaskNextItemToken}; }

}  // namespace

SftStage::SftStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
                   const Dataset& data, const LeaveOneOutSplit& split,
                   const Distributed& distributed)
    : config_(config),
      stage_(stage),
      task_(stage.objective.task),
      events_(event_split(config, data)),
      train_(build_sft_examples(task_, events_, SplitPart::kTrain, sft_options(config, stage))),
      losses_(ctx.device(), static_cast<size_t>(max_tokens())) {
  const SftOptions options = sft_options(config, stage);
  if (task_ == SftTask::kNextItem) {
    RECFORGE_CHECK(config.data.split == SplitProtocol::kLeaveOneOut, "stage ", stage.name,
                   ": the next_item task is evaluated by ranking on the leave-one-out split");
    ranking_.emplace(config, stage, data, split, next_item_prompt(), false, distributed);
  } else {
    valid_ = build_sft_examples(task_, events_, SplitPart::kValid, options);
    test_ = build_sft_examples(task_, events_, SplitPart::kTest, options);
    RECFORGE_CHECK(!valid_.empty() && !test_.empty(), "stage ", stage.name, ": the dataset at ",
                   data.directory().string(), " gives no held-out ", name_of(task_),
                   " example to validate or test on (", valid_.size(), " valid, ", test_.size(),
                   " test): its users need more events");
  }
}

int SftStage::max_tokens() const {
  const int len = config_.data.max_len;
  const int train = stage_.train.token_budget > 0 ? std::max(stage_.train.token_budget, len)
                                                  : stage_.train.batch_size * len;
  return std::max(train, stage_.eval.batch_size * len);
}

// Σ over the step's answers of −log p(answer | prompt), divided by the number of answers.
StepLosses SftStage::forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                                      int64_t step, const DataShard& shard) {
  size_t answers = 0;
  for (const MicroBatch& batch : micro) answers += batch.size();
  const float scale = 1.0f / static_cast<float>(answers);
  StepLosses result;
  double sum = 0.0;
  for (size_t m = 0; m < micro.size(); ++m) {
    PackedBatch host = empty_batch();
    for (uint32_t e : shard.of(micro[m])) append_example(host, train_[e], config_.data.max_len);
    DeviceBatch batch(model.context().device(), host, model.config());
    const uint64_t stream = (static_cast<uint64_t>(step) << 24) ^ (m << 4) ^ 5u;
    model.forward(batch, {AttentionMask::kCausal, true, config_.run.seed ^ stream});
    add_answer_losses(model, batch, scale, sum);
    model.backward(batch, m + 1 == micro.size());
    result.tokens += batch.num_tokens();
  }
  result.loss = sum / static_cast<double>(answers);
  return result;
}

void SftStage::add_answer_losses(Decoder<float>& model, const DeviceBatch& batch, float scale,
                                 double& sum) {
  const Context& ctx = model.context();
  const ModelConfig& mc = model.config();
  const int N = batch.num_tokens();
  if (N == 0) return;
  zero_bytes(ctx, model.hidden_gradient(), static_cast<size_t>(N) * mc.d_model * sizeof(float));
  classifier_forward_backward(ctx, losses_.data(), model.hidden_gradient(),
                              model.weight_gradients().wte, model.hidden(), model.weights().wte,
                              batch.targets(), N, mc.d_model, mc.vocab_size, scale);
  std::vector<float> losses(N);
  copy_bytes(losses.data(), Device::kCpu, losses_.data(), ctx.device(), N * sizeof(float));
  for (float loss : losses) sum += loss;
}

std::vector<float> SftStage::answer_logits(Decoder<float>& model,
                                           const std::vector<SftExample>& examples) {
  const Context& ctx = model.context();
  const ModelConfig& mc = model.config();
  const int C = mc.d_model;
  std::vector<float> special(static_cast<size_t>(kFirstItemToken) * C);
  copy_bytes(special.data(), Device::kCpu, model.special_rows(), ctx.device(),
             special.size() * sizeof(float));
  std::vector<float> logits(examples.size() * kFirstItemToken);
  const size_t batch_size = static_cast<size_t>(stage_.eval.batch_size);
  for (size_t first = 0; first < examples.size(); first += batch_size) {
    const size_t last = std::min(examples.size(), first + batch_size);
    PackedBatch host = empty_batch();
    for (size_t e = first; e < last; ++e) append_example(host, examples[e], config_.data.max_len);
    DeviceBatch batch(ctx.device(), host, mc);
    model.forward(batch, {AttentionMask::kCausal, false, 0});
    std::vector<float> hidden(static_cast<size_t>(batch.num_tokens()) * C);
    copy_bytes(hidden.data(), Device::kCpu, model.hidden(), ctx.device(),
               hidden.size() * sizeof(float));
    for (size_t e = first; e < last; ++e) {
      const float* h = hidden.data() + static_cast<size_t>(host.offsets[e - first + 1] - 1) * C;
      for (int v = 0; v < kFirstItemToken; ++v) {
        double dot = 0.0;
        for (int c = 0; c < C; ++c) dot += double{h[c]} * special[static_cast<size_t>(v) * C + c];
        logits[e * kFirstItemToken + v] = static_cast<float>(dot);
      }
    }
  }
  return logits;
}

Metrics SftStage::score(Decoder<float>& model, const std::vector<SftExample>& examples) {
  RECFORGE_CHECK(!examples.empty(), "stage ", stage_.name, ": no held-out example to evaluate");
  const std::vector<float> logits = answer_logits(model, examples);
  std::vector<float> predictions, labels;
  for (size_t e = 0; e < examples.size(); ++e) {
    const float* row = logits.data() + e * kFirstItemToken;
    predictions.push_back(task_ == SftTask::kPreference ? preference_score(row)
                                                        : expected_rating(row));
    labels.push_back(examples[e].label);
  }
  if (task_ == SftTask::kRating) {
    return {{"rmse", rmse(predictions, labels)}, {"mae", mae(predictions, labels)}};
  }
  double correct = 0.0;
  for (size_t e = 0; e < predictions.size(); ++e)
    correct += (predictions[e] > 0) == (labels[e] > 0.5f);
  return {{"auc", auc(predictions, labels)}, {"accuracy", correct / predictions.size()}};
}

Metrics SftStage::evaluate(Decoder<float>& model, Split which) {
  if (ranking_) return ranking_->evaluate(model, which);
  return score(model, which == Split::kValid ? valid_ : test_);
}

nlohmann::json SftStage::final_report(Decoder<float>& model) {
  nlohmann::json result = {{"task", name_of(task_)},
                           {"split", name_of(config_.data.split)},
                           {"train_examples", train_.size()}};
  if (ranking_) {
    result.update(ranking_->final_report(model));
    return result;
  }
  for (Split which : {Split::kValid, Split::kTest}) {
    const std::string name = which == Split::kValid ? "valid" : "test";
    for (const auto& [k, v] : evaluate(model, which)) result[name + "/" + k] = v;
    result[name + "_examples"] = (which == Split::kValid ? valid_ : test_).size();
  }
  return result;
}

nlohmann::json SftStage::inference_state() const {
  if (ranking_) return ranking_->inference_state();
  return {{"inference", "causal"}, {"task", name_of(task_)}, {"prompt", nlohmann::json::array()}};
}

}  // namespace recforge
