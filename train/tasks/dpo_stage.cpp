#include "train/tasks/dpo_stage.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kernels/candidate_logprobs.h"
#include "kernels/check.h"
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
  std::vector<PreferencePair> pairs = stage.objective.dpo.pairs == "rating"
                                          ? rating_pairs(split, options)
                                          : sequence_training_pairs(split, options);
  return most_recent_per_user(std::move(pairs), stage.objective.dpo.pairs_per_user);
}

DpoParams dpo_params(const DpoSection& dpo) {
  DpoParams params;
  params.type = parse_dpo_loss(dpo.loss);
  params.beta = dpo.beta;
  params.label_smoothing = dpo.label_smoothing;
  return params;
}

}  // namespace

DpoStage::DpoStage(const RunConfig& config, const StageSection& stage, const Context& ctx,
                   const Dataset& data, const LeaveOneOutSplit& split, bool lora,
                   const Distributed& distributed)
    : config_(config),
      stage_(stage),
      num_items_(data.num_items()),
      lora_(lora),
      distributed_(distributed),
      params_(dpo_params(stage.objective.dpo)),
      K_(stage.objective.dpo.rejected + 1),
      pairs_(training_pairs(config, stage, split)),
      candidates_(candidate_matrix(pairs_)),
      ranking_(config, stage, data, split, {kTaskNextItemToken}, false, distributed),
      rows_(ctx.device(), static_cast<size_t>(max_pairs()) * config.model.d_model),
      drows_(ctx.device(), rows_.size()),
      logps_(ctx.device(), static_cast<size_t>(max_pairs()) * K_),
      reference_logps_(ctx.device(), logps_.size()),
      lse_(ctx.device(), static_cast<size_t>(max_pairs())),
      losses_(ctx.device(), static_cast<size_t>(max_pairs())),
      dpolicy_(ctx.device(), logps_.size()),
      metrics_(ctx.device(), static_cast<size_t>(max_pairs()) * kDpoNumMetrics),
      candidates_device_(ctx.device(), logps_.size()) {
  RECFORGE_CHECK(config.data.split == "leave_one_out", "stage ", stage.name,
                 ": DPO pairs and its ranking evaluation use the leave-one-out split");
  RECFORGE_CHECK(lora || stage.objective.dpo.precompute_reference, "stage ", stage.name,
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

void DpoStage::candidate_logps(Decoder<float>& model, const PackedBatch& host,
                               const DeviceBatch& batch, std::span<const uint32_t> pairs,
                               float* logps) {
  const Context& ctx = model.context();
  const int C = model.config().d_model, P = static_cast<int>(pairs.size());
  std::vector<float> hidden(static_cast<size_t>(batch.num_tokens()) * C);
  copy_bytes(hidden.data(), Device::kCpu, model.hidden(), ctx.device(),
             hidden.size() * sizeof(float));
  std::vector<float> rows(static_cast<size_t>(P) * C);
  std::vector<int32_t> candidates(static_cast<size_t>(P) * K_);
  for (int b = 0; b < P; ++b) {
    const size_t last = static_cast<size_t>(host.offsets[b + 1] - 1);
    std::copy_n(hidden.begin() + last * C, C, rows.begin() + static_cast<size_t>(b) * C);
    std::copy_n(candidates_.begin() + static_cast<size_t>(pairs[b]) * K_, K_,
                candidates.begin() + static_cast<size_t>(b) * K_);
  }
  rows_.upload(rows);
  candidates_device_.upload(candidates);
  candidate_logprobs_forward(ctx, logps, lse_.data(), rows_.data(),
                             model.weights().wte + static_cast<size_t>(kFirstItemToken) * C,
                             candidates_device_.data(), P, C, num_items_, K_);
}

// The frozen reference's log-probabilities: the starting policy's, precomputed, or the model
// with its adapters disabled.
std::vector<float> DpoStage::reference_logps(Decoder<float>& model,
                                             std::span<const uint32_t> pairs) {
  std::vector<float> values(pairs.size() * K_);
  if (!reference_.empty()) {
    for (size_t b = 0; b < pairs.size(); ++b) {
      std::copy_n(reference_.begin() + static_cast<size_t>(pairs[b]) * K_, K_,
                  values.begin() + b * K_);
    }
    return values;
  }
  const PackedBatch host = prompts(pairs);
  DeviceBatch batch(model.context().device(), host, model.config());
  ForwardOptions options;
  options.use_adapters = false;
  model.forward(batch, options);
  candidate_logps(model, host, batch, pairs, reference_logps_.data());
  copy_bytes(values.data(), Device::kCpu, reference_logps_.data(), model.context().device(),
             values.size() * sizeof(float));
  return values;
}

void DpoStage::precompute_reference(Decoder<float>& model) {
  const fs::path file = fs::path(config_.run.output_dir) / ("reference-" + stage_.name + ".f32");
  reference_.assign(pairs_.size() * K_, 0.0f);
  if (fs::exists(file)) {
    std::ifstream in(file, std::ios::binary);
    in.read(reinterpret_cast<char*>(reference_.data()), reference_.size() * sizeof(float));
    RECFORGE_CHECK(in.gcount() == static_cast<std::streamsize>(reference_.size() * sizeof(float)) &&
                       in.peek() == EOF,
                   file.string(), ": expected ", reference_.size(),
                   " reference log-probabilities (delete it to recompute)");
    return;
  }
  std::vector<float> computed;
  computed.reserve(reference_.size());
  reference_.clear();
  std::vector<uint32_t> all(pairs_.size());
  for (size_t p = 0; p < all.size(); ++p) all[p] = static_cast<uint32_t>(p);
  for (size_t first = 0; first < all.size(); first += max_pairs()) {
    const size_t count = std::min(all.size() - first, static_cast<size_t>(max_pairs()));
    const std::span<const uint32_t> pairs(all.data() + first, count);
    const PackedBatch host = prompts(pairs);
    DeviceBatch batch(model.context().device(), host, model.config());
    model.forward(batch, {});
    candidate_logps(model, host, batch, pairs, reference_logps_.data());
    std::vector<float> values(count * K_);
    copy_bytes(values.data(), Device::kCpu, reference_logps_.data(), model.context().device(),
               values.size() * sizeof(float));
    computed.insert(computed.end(), values.begin(), values.end());
  }
  reference_ = std::move(computed);
  if (!distributed_.writes_files()) return;  // every rank computed the same values
  const fs::path tmp = fs::path(file) += ".tmp";
  std::ofstream(tmp, std::ios::binary)
      .write(reinterpret_cast<const char*>(reference_.data()), reference_.size() * sizeof(float));
  fs::rename(tmp, file);
  std::printf("stage %s: reference log-probabilities of %zu pairs precomputed in %s\n",
              stage_.name.c_str(), pairs_.size(), file.c_str());
}

void DpoStage::prepare(Decoder<float>& model) {
  if (stage_.objective.dpo.precompute_reference) precompute_reference(model);
}

StepLosses DpoStage::train_step(Decoder<float>& model,
                                const std::vector<std::span<const uint32_t>>& micro_batches,
                                int64_t step, const DataShard& shard) {
  const Context& ctx = model.context();
  const int C = model.config().d_model;
  size_t total = 0;
  for (const auto& micro : micro_batches) total += micro.size();
  const float scale = 1.0f / static_cast<float>(total);
  double loss = 0.0, sums[kDpoNumMetrics] = {}, logp_chosen = 0.0, logp_rejected = 0.0;
  StepLosses result;
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const std::span<const uint32_t> pairs = shard.of(micro_batches[m]);
    if (pairs.empty()) continue;
    const int P = static_cast<int>(pairs.size());
    reference_logps_.upload(reference_logps(model, pairs));
    const PackedBatch host = prompts(pairs);
    DeviceBatch batch(ctx.device(), host, model.config());
    const uint64_t stream = (static_cast<uint64_t>(step) << 24) ^ (m << 4) ^ 7u;
    const bool dropout = !stage_.objective.dpo.disable_dropout;
    model.forward(batch, {AttentionMask::kCausal, dropout, config_.run.seed ^ stream});
    candidate_logps(model, host, batch, pairs, logps_.data());
    dpo_loss(ctx, losses_.data(), dpolicy_.data(), metrics_.data(), logps_.data(),
             reference_logps_.data(), P, K_, params_, scale);
    float* item_rows_gradient =
        model.weight_gradients().wte + static_cast<size_t>(kFirstItemToken) * C;
    candidate_logprobs_backward(ctx, drows_.data(), item_rows_gradient, dpolicy_.data(),
                                lse_.data(), rows_.data(),
                                model.weights().wte + static_cast<size_t>(kFirstItemToken) * C,
                                candidates_device_.data(), P, C, num_items_, K_);
    // ∂L/∂hidden: the pairs' rows at their last positions, zero elsewhere.
    std::vector<float> drows(static_cast<size_t>(P) * C);
    copy_bytes(drows.data(), Device::kCpu, drows_.data(), ctx.device(),
               drows.size() * sizeof(float));
    std::vector<float> dhidden(static_cast<size_t>(batch.num_tokens()) * C, 0.0f);
    for (int b = 0; b < P; ++b) {
      std::copy_n(drows.begin() + static_cast<size_t>(b) * C, C,
                  dhidden.begin() + static_cast<size_t>(host.offsets[b + 1] - 1) * C);
    }
    copy_bytes(model.hidden_gradient(), ctx.device(), dhidden.data(), Device::kCpu,
               dhidden.size() * sizeof(float));
    model.backward(batch);
    std::vector<float> losses(P), metrics(static_cast<size_t>(P) * kDpoNumMetrics),
        logps(static_cast<size_t>(P) * K_);
    copy_bytes(losses.data(), Device::kCpu, losses_.data(), ctx.device(), P * sizeof(float));
    copy_bytes(metrics.data(), Device::kCpu, metrics_.data(), ctx.device(),
               metrics.size() * sizeof(float));
    copy_bytes(logps.data(), Device::kCpu, logps_.data(), ctx.device(),
               logps.size() * sizeof(float));
    for (int b = 0; b < P; ++b) {
      loss += losses[b];
      for (int k = 0; k < kDpoNumMetrics; ++k) sums[k] += metrics[b * kDpoNumMetrics + k];
      logp_chosen += logps[b * K_];
      for (int k = 1; k < K_; ++k) logp_rejected += logps[b * K_ + k] / (K_ - 1);
    }
    result.tokens += batch.num_tokens();
  }
  const double n = static_cast<double>(total);
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
                 {"reference", stage_.objective.dpo.precompute_reference ? "precomputed"
                                                                         : "adapters disabled"}});
  return result;
}

}  // namespace recforge
