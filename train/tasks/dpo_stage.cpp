#include "train/tasks/dpo_stage.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kernels/candidate_logprobs.h"
#include "kernels/check.h"
#include "kernels/rows.h"
#include "model/durable_file.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

namespace fs = std::filesystem;

PreferencePairOptions pair_options(const RunConfig& config, const StageSection& stage) {
  PreferencePairOptions options;
  options.num_candidates = stage.objective.dpo.rejected + 1;
  options.max_len = config.data.max_len - 1;  // room for the task token
  options.seed = config.run.seed;
  options.chosen_min_rating = static_cast<float>(stage.objective.dpo.chosen_min_rating);
  options.rejected_max_rating = static_cast<float>(stage.objective.dpo.rejected_max_rating);
  return options;
}

// Each user's `per_user` most recent pairs (the pairs come out by user, then position).
std::vector<PreferencePair> most_recent_per_user(std::vector<PreferencePair> pairs, int per_user) {
  std::vector<PreferencePair> kept;
  for (size_t end = pairs.size(); end > 0;) {
    size_t begin = end;
    while (begin > 0 && pairs[begin - 1].user == pairs[end - 1].user) --begin;
    for (size_t i =
             begin + (end - begin > static_cast<size_t>(per_user) ? end - begin - per_user : 0);
         i < end; ++i) {
      kept.push_back(std::move(pairs[i]));
    }
    end = begin;
  }
  std::reverse(kept.begin(), kept.end());
  return kept;
}

std::vector<PreferencePair> training_pairs(const RunConfig& config, const StageSection& stage,
                                           const LeaveOneOutSplit& split) {
  const PreferencePairOptions options = pair_options(config, stage);
  std::vector<PreferencePair> pairs = stage.objective.dpo.pairs == PairSource::kRating
                                          ? rating_pairs(split, options)
                                          : sequence_training_pairs(split, options);
  return most_recent_per_user(std::move(pairs), stage.objective.dpo.pairs_per_user);
}

DpoParams dpo_params(const DpoSection& dpo) {
  DpoParams params;
  params.type = dpo.loss;
  params.beta = dpo.beta;
  params.label_smoothing = dpo.label_smoothing;
  return params;
}

}  // namespace

DpoStage::DpoStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
                   const Dataset& data, const LeaveOneOutSplit& split,
                   const Distributed& distributed)
    : config_(config),
      stage_(stage),
      ctx_(ctx),
      num_items_(data.num_items()),
      params_(dpo_params(stage.objective.dpo)),
      K_(stage.objective.dpo.rejected + 1),
      pairs_(training_pairs(config, stage, split)),
      ranking_(config, stage, data, split, {kTaskNextItemToken}, false, distributed),
      writes_files_(distributed.writes_files()),
      candidates_(ctx.device(), candidate_matrix(pairs_)) {
  RECFORGE_CHECK(config.data.split == SplitProtocol::kLeaveOneOut, "stage ", stage.name,
                 ": DPO pairs and its ranking evaluation use the leave-one-out split");
  RECFORGE_CHECK(stage.finetune.method == FinetuneMethod::kLora || reference_precomputed(),
                 "stage ", stage.name,
                 ": without LoRA the reference model is kept as precomputed log-probabilities; "
                 "set objective.dpo.precompute_reference: true (or finetune.method: lora)");
}

int DpoStage::max_pairs() const {
  return stage_.train.token_budget > 0 ? stage_.train.token_budget
                                       : std::max(stage_.train.batch_size, 1);
}

int DpoStage::max_tokens() const {
  const int len = config_.data.max_len;
  return std::max(max_pairs() * len, stage_.eval.batch_size * len);
}

PackedBatch DpoStage::prompts(std::span<const uint32_t> pairs) const {
  PackedBatch host = empty_batch();
  for (uint32_t p : pairs) {
    std::vector<int32_t> tokens = {kTaskNextItemToken};
    for (int32_t item : pairs_[p].prompt) tokens.push_back(item_token(item));
    host.add_recent_sequence(tokens, config_.data.max_len);
  }
  return host;
}

void DpoStage::load_pairs(std::span<const uint32_t> pairs, const PackedBatch& host) {
  const int P = static_cast<int>(pairs.size());
  std::vector<int32_t> index(pairs.begin(), pairs.end()), last(P);
  for (int b = 0; b < P; ++b) last[b] = host.offsets[b + 1] - 1;
  pair_index_.upload(index);
  last_rows_.upload(last);
  gather_rows(ctx_, batch_candidates_.data(), candidates_.data(), pair_index_.data(), P, K_);
  if (reference_.size() > 0) {
    gather_rows(ctx_, batch_reference_.data(), reference_.data(), pair_index_.data(), P, K_);
  }
}

void DpoStage::candidate_logps(Decoder<float>& model, int P, float* logps) {
  const int C = model.config().d_model;
  gather_rows(ctx_, rows_.data(), model.hidden(), last_rows_.data(), P, C);
  candidate_logprobs_forward(ctx_, logps, lse_.data(), rows_.data(), model.item_rows(),
                             batch_candidates_.data(), P, C, num_items_, K_);
}

void DpoStage::precompute_reference(Decoder<float>& model) {
  const fs::path file = fs::path(config_.run.output_dir) / ("reference-" + stage_.name + ".f32");
  std::vector<float> reference(pairs_.size() * K_);
  if (fs::exists(file)) {
    std::ifstream in(file, std::ios::binary);
    in.read(reinterpret_cast<char*>(reference.data()), reference.size() * sizeof(float));
    RECFORGE_CHECK(in.gcount() == static_cast<std::streamsize>(reference.size() * sizeof(float)) &&
                       in.peek() == EOF,
                   file.string(), ": expected ", reference.size(),
                   " reference log-probabilities (delete it to recompute)");
    reference_ = Buffer<float>(ctx_.device(), reference);
    return;
  }
  reference_ = Buffer<float>(ctx_.device(), reference.size());
  std::vector<uint32_t> all(pairs_.size());
  for (size_t p = 0; p < all.size(); ++p) all[p] = static_cast<uint32_t>(p);
  for (size_t first = 0; first < all.size(); first += max_pairs()) {
    const size_t count = std::min(all.size() - first, static_cast<size_t>(max_pairs()));
    const std::span<const uint32_t> pairs(all.data() + first, count);
    const PackedBatch host = prompts(pairs);
    DeviceBatch batch(ctx_.device(), host, model.config());
    load_pairs(pairs, host);
    model.forward(batch, {});
    candidate_logps(model, static_cast<int>(count), reference_.data() + first * K_);
  }
  if (!writes_files_) return;  // every rank computed the same values
  reference = reference_.download();
  write_file_atomically(file, std::string_view(reinterpret_cast<const char*>(reference.data()),
                                               reference.size() * sizeof(float)));
  std::printf("stage %s: reference log-probabilities of %zu pairs precomputed in %s\n",
              stage_.name.c_str(), pairs_.size(), file.c_str());
}

void DpoStage::prepare(Decoder<float>& model) {
  const size_t P = static_cast<size_t>(max_pairs()), C = model.config().d_model;
  const size_t step_pairs = P * stage_.train.grad_accum;
  const Device device = ctx_.device();
  pair_index_ = Buffer<int32_t>(device, P);
  last_rows_ = Buffer<int32_t>(device, P);
  batch_candidates_ = Buffer<int32_t>(device, P * K_);
  batch_reference_ = Buffer<float>(device, P * K_);
  rows_ = Buffer<float>(device, P * C);
  drows_ = Buffer<float>(device, P * C);
  lse_ = Buffer<float>(device, P);
  dpolicy_ = Buffer<float>(device, P * K_);
  logps_ = Buffer<float>(device, step_pairs * K_);
  losses_ = Buffer<float>(device, step_pairs);
  metrics_ = Buffer<float>(device, step_pairs * kDpoNumMetrics);
  if (reference_precomputed()) precompute_reference(model);
}

StepLosses DpoStage::forward_backward(Decoder<float>& model, std::span<const MicroBatch> micro,
                                      int64_t step, const DataShard& shard) {
  const int C = model.config().d_model;
  size_t total = 0;
  for (const MicroBatch& batch : micro) total += batch.size();
  const float scale = 1.0f / static_cast<float>(total);
  int done = 0;  // pairs of the step so far on this shard
  int64_t tokens = 0;
  for (size_t m = 0; m < micro.size(); ++m) {
    const std::span<const uint32_t> pairs = shard.of(micro[m]);
    const int P = static_cast<int>(pairs.size());
    const PackedBatch host = prompts(pairs);
    DeviceBatch batch(ctx_.device(), host, model.config());
    load_pairs(pairs, host);
    if (!reference_precomputed()) {  // the same model without its adapters
      ForwardOptions reference;
      reference.use_adapters = false;
      model.forward(batch, reference);
      if (P > 0) candidate_logps(model, P, batch_reference_.data());
    }
    const uint64_t stream = (static_cast<uint64_t>(step) << 24) ^ (m << 4) ^ 7u;
    const bool dropout = !stage_.objective.dpo.disable_dropout;
    model.forward(batch, {AttentionMask::kCausal, dropout, config_.run.seed ^ stream});
    if (P > 0) {
      float* logps = logps_.data() + static_cast<size_t>(done) * K_;
      candidate_logps(model, P, logps);
      dpo_loss(ctx_, losses_.data() + done, dpolicy_.data(),
               metrics_.data() + static_cast<size_t>(done) * kDpoNumMetrics, logps,
               batch_reference_.data(), P, K_, params_, scale);
      candidate_logprobs_backward(ctx_, drows_.data(), model.item_row_gradients(), dpolicy_.data(),
                                  lse_.data(), rows_.data(), model.item_rows(),
                                  batch_candidates_.data(), P, C, num_items_, K_);
      scatter_rows(ctx_, model.hidden_gradient(), drows_.data(), last_rows_.data(), P,
                   batch.num_tokens(), C);
    }
    model.backward(batch, m + 1 == micro.size());
    done += P;
    tokens += batch.num_tokens();
  }
  StepLosses result = step_losses(done, total);
  result.tokens = tokens;
  return result;
}

// Means over the step's pairs of the loss, the rewards and the log-probabilities (the rejected
// ones averaged over the K − 1 first).
StepLosses DpoStage::step_losses(int pairs, size_t total) const {
  std::vector<float> losses(pairs), metrics(static_cast<size_t>(pairs) * kDpoNumMetrics),
      logps(static_cast<size_t>(pairs) * K_);
  copy_bytes(losses.data(), Device::kCpu, losses_.data(), ctx_.device(), pairs * sizeof(float));
  copy_bytes(metrics.data(), Device::kCpu, metrics_.data(), ctx_.device(),
             metrics.size() * sizeof(float));
  copy_bytes(logps.data(), Device::kCpu, logps_.data(), ctx_.device(),
             logps.size() * sizeof(float));
  double loss = 0.0, sums[kDpoNumMetrics] = {}, logp_chosen = 0.0, logp_rejected = 0.0;
  for (int b = 0; b < pairs; ++b) {
    loss += losses[b];
    for (int k = 0; k < kDpoNumMetrics; ++k) sums[k] += metrics[b * kDpoNumMetrics + k];
    logp_chosen += logps[b * K_];
    for (int k = 1; k < K_; ++k) logp_rejected += logps[b * K_ + k] / (K_ - 1);
  }
  const double n = static_cast<double>(total);
  StepLosses result;
  result.loss = loss / n;
  result.parts = {{"rewards/chosen", sums[kDpoRewardChosen] / n},
                  {"rewards/rejected", sums[kDpoRewardRejected] / n},
                  {"rewards/margins", sums[kDpoMargin] / n},
                  {"rewards/accuracies", sums[kDpoAccuracy] / n},
                  {"logps/chosen", logp_chosen / n},
                  {"logps/rejected", logp_rejected / n}};
  return result;
}

nlohmann::json DpoStage::final_report(Decoder<float>& model) {
  nlohmann::json result = ranking_.final_report(model);
  result.update({{"dpo_loss", dpo_loss_name(params_.type)},
                 {"beta", params_.beta},
                 {"train_pairs", pairs_.size()},
                 {"candidates_per_pair", K_},
                 {"reference", reference_precomputed() ? "precomputed" : "adapters disabled"}});
  return result;
}

}  // namespace recforge
