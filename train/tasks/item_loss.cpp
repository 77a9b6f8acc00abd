#include "train/tasks/item_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/classifier.h"
#include "kernels/global_norm.h"
#include "kernels/math.h"
#include "kernels/sampled_softmax.h"
#include "model/vocabulary.h"

namespace recforge {

ItemLoss::ItemLoss(const Context& ctx, ItemLossConfig config, int32_t num_items,
                   std::span<const int64_t> train_counts, int max_tokens)
    : ctx_(ctx),
      config_(std::move(config)),
      num_items_(num_items),
      log_q_(num_items, -std::log(static_cast<float>(num_items))),
      targets_(ctx.device(), static_cast<size_t>(max_tokens) * kMaxTargets),
      losses_(ctx.device(), max_tokens) {
  RECFORGE_CHECK(config_.temperature > 0.0f, "temperature must be positive, got ",
                 config_.temperature);
  if (!config_.sampled) return;
  RECFORGE_CHECK(config_.negatives >= 1, "sampled softmax needs at least one negative");
  if (config_.popularity) {
    RECFORGE_CHECK(train_counts.size() == static_cast<size_t>(num_items),
                   "popularity sampling needs one count per item");
    // Add-one smoothing: an item unseen in training can still be drawn, and log q stays finite.
    const double total = std::accumulate(train_counts.begin(), train_counts.end(), 0.0) + num_items;
    cumulative_.resize(num_items);
    double running = 0.0;
    for (int32_t i = 0; i < num_items; ++i) {
      const double q = (train_counts[i] + 1.0) / total;
      running += q;
      cumulative_[i] = running;
      log_q_[i] = static_cast<float>(std::log(q));
    }
  }
  negatives_ = Buffer<int32_t>(ctx.device(), config_.negatives);
  log_q_negative_ = Buffer<float>(ctx.device(), config_.negatives);
  log_q_positive_ = Buffer<float>(ctx.device(), max_tokens);
}

// A batch whose targets all are ignored has loss 0 and ∂L/∂hidden 0.
double ItemLoss::nothing_counts(Decoder<float>& model, int N, bool backward) const {
  if (backward) {
    zero_bytes(ctx_, model.hidden_gradient(),
               static_cast<size_t>(N) * model.config().d_model * sizeof(float));
  }
  return 0.0;
}

float ItemLoss::k_weight(int k) const {
  return config_.k_weights.empty() ? 1.0f : config_.k_weights.at(k);
}

double ItemLoss::weighted_count(const ObjectiveBatch& batch) const {
  double total = 0.0;
  for (size_t i = 0; i < batch.targets.size(); ++i) {
    if (batch.targets[i] != kIgnoreIndex) total += k_weight(static_cast<int>(i % batch.K));
  }
  return total;
}

double ItemLoss::compute(Decoder<float>& model, const ObjectiveBatch& batch, float gradient_scale,
                         bool backward, uint64_t seed, uint64_t stream) {
  RECFORGE_CHECK(batch.inputs.num_tokens() <= model.max_tokens(), "a batch of ",
                 batch.inputs.num_tokens(), " tokens exceeds the model's ", model.max_tokens());
  return config_.sampled ? sampled_softmax(model, batch, gradient_scale, backward, seed, stream)
                         : full_softmax(model, batch, gradient_scale, backward);
}

double ItemLoss::full_softmax(Decoder<float>& model, const ObjectiveBatch& batch,
                              float gradient_scale, bool backward) {
  const int N = batch.inputs.num_tokens(), C = model.config().d_model;
  const double count = weighted_count(batch);
  if (N == 0 || count == 0.0) return nothing_counts(model, N, backward);
  RECFORGE_CHECK(batch.K <= kMaxTargets, "at most ", kMaxTargets, " targets per position");
  TargetWeights weights;
  weights.K = batch.K;
  for (int k = 0; k < batch.K; ++k) weights.w[k] = k_weight(k);
  targets_.upload(batch.targets);

  // Logits h·e/τ: the classifier sees h/τ, and ∂L/∂h = ∂L/∂(h/τ) / τ.
  const float inv_t = 1.0f / config_.temperature;
  const float* hidden = model.hidden();
  if (config_.temperature != 1.0f) {
    if (scaled_hidden_.size() < static_cast<size_t>(N) * C) {
      scaled_hidden_ = Buffer<float>(ctx_.device(), static_cast<size_t>(N) * C);
    }
    copy_bytes(scaled_hidden_.data(), ctx_.device(), hidden, ctx_.device(), sizeof(float) * N * C);
    scale(ctx_, scaled_hidden_.data(), static_cast<int64_t>(N) * C, inv_t);
    hidden = scaled_hidden_.data();
  }
  float* dhidden = backward ? model.hidden_gradient() : nullptr;
  float* ditems = backward ? model.item_row_gradients() : nullptr;
  classifier_forward_backward(ctx_, losses_.data(), dhidden, ditems, hidden, model.item_rows(),
                              targets_.data(), weights, N, C, num_items_,
                              static_cast<float>(gradient_scale / count), kIgnoreIndex);
  if (backward && config_.temperature != 1.0f) {
    scale(ctx_, dhidden, static_cast<int64_t>(N) * C, inv_t);
  }
  std::vector<float> losses = losses_.download();
  return std::accumulate(losses.begin(), losses.begin() + N, 0.0) / count;
}

std::vector<int32_t> ItemLoss::draw_negatives(uint64_t seed, uint64_t stream) const {
  std::vector<int32_t> negatives(config_.negatives);
  for (int j = 0; j < config_.negatives; ++j) {
    const float u = philox_uniform(seed, stream, static_cast<uint64_t>(j));
    if (cumulative_.empty()) {
      negatives[j] = std::min(num_items_ - 1, static_cast<int32_t>(u * num_items_));
    } else {
      auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(),
                                 static_cast<double>(u) * cumulative_.back());
      negatives[j] =
          std::min<int32_t>(num_items_ - 1, static_cast<int32_t>(it - cumulative_.begin()));
    }
  }
  return negatives;
}

double ItemLoss::sampled_softmax(Decoder<float>& model, const ObjectiveBatch& batch,
                                 float gradient_scale, bool backward, uint64_t seed,
                                 uint64_t stream) {
  RECFORGE_CHECK(batch.K == 1, "sampled softmax supports one target per position (next_k = 1)");
  const int N = batch.inputs.num_tokens(), C = model.config().d_model, P = config_.negatives;
  const double count = weighted_count(batch);
  if (N == 0 || count == 0.0) return nothing_counts(model, N, backward);
  std::vector<int32_t> negatives = draw_negatives(seed, stream);
  std::vector<float> log_q_negative(P), log_q_positive(N, 0.0f);
  for (int j = 0; j < P; ++j) log_q_negative[j] = log_q_[negatives[j]];
  for (int n = 0; n < N; ++n) {
    if (batch.targets[n] != kIgnoreIndex) log_q_positive[n] = log_q_[batch.targets[n]];
  }
  targets_.upload(batch.targets);
  negatives_.upload(negatives);
  log_q_negative_.upload(log_q_negative);
  log_q_positive_.upload(log_q_positive);
  SampledSoftmaxInputs<float> in;
  in.hidden = model.hidden();
  in.wte = model.item_rows();
  in.positives = targets_.data();
  in.negatives = negatives_.data();
  in.log_q_positive = log_q_positive_.data();
  in.log_q_negative = log_q_negative_.data();
  in.N = N;
  in.C = C;
  in.V = num_items_;
  in.P = P;
  in.temperature = config_.temperature;
  in.ignore_index = kIgnoreIndex;
  sampled_softmax_forward_backward(ctx_, losses_.data(),
                                   backward ? model.hidden_gradient() : nullptr,
                                   backward ? model.item_row_gradients() : nullptr, in,
                                   static_cast<float>(gradient_scale / count));
  std::vector<float> losses = losses_.download();
  return std::accumulate(losses.begin(), losses.begin() + N, 0.0) / count;
}

}  // namespace recforge
