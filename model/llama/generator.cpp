#include "model/llama/generator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/check.h"

namespace recforge {

void SamplingOptions::validate() const {
  RECFORGE_CHECK(std::isfinite(temperature) && temperature > 0.0f,
                 "sampling: temperature must be > 0, got ", temperature);
  RECFORGE_CHECK(top_p > 0.0f && top_p <= 1.0f, "sampling: top_p must be in (0, 1], got ", top_p);
}

namespace {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// A draw from softmax(logits / T) restricted to the most probable tokens whose mass first reaches
// top_p (at least one token).
int32_t sample_nucleus(std::span<const float> logits, const SamplingOptions& options,
                       std::mt19937_64& rng) {
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    probs[i] = std::exp((logits[i] - max_logit) / options.temperature);
    total += probs[i];
  }
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
  size_t kept = 0;
  double mass = 0.0;
  while (kept < order.size() && (kept == 0 || mass < options.top_p * total)) {
    mass += probs[order[kept++]];
  }
  double draw = std::uniform_real_distribution<double>(0.0, mass)(rng);
  for (size_t i = 0; i < kept; ++i) {
    draw -= probs[order[i]];
    if (draw < 0.0) return order[i];
  }
  return order[kept - 1];
}

}  // namespace

int32_t sample_token(std::span<const float> logits, const SamplingOptions& options,
                     std::mt19937_64& rng) {
  RECFORGE_CHECK(!logits.empty(), "sample_token: no logits");
  if (options.greedy) return argmax(logits);
  return sample_nucleus(logits, options, rng);
}

LlamaGenerator::LlamaGenerator(LlamaModel<float>& model, int max_context)
    : model_(model),
      cache_(model.context().device(), model.config(), max_context),
      logits_(model.context().device(), model.config().vocab_size),
      host_logits_(model.config().vocab_size) {}

std::span<const float> LlamaGenerator::append(std::span<const int32_t> tokens) {
  RECFORGE_CHECK(!tokens.empty(), "generation: nothing to append");
  for (size_t begin = 0; begin < tokens.size(); begin += model_.max_tokens()) {
    const size_t n = std::min<size_t>(model_.max_tokens(), tokens.size() - begin);
    model_.forward_cached(tokens.subspan(begin, n), cache_);
  }
  const int last = static_cast<int>((tokens.size() - 1) % model_.max_tokens());
  model_.row_logits(logits_.data(), last);
  copy_bytes(host_logits_.data(), Device::kCpu, logits_.data(), logits_.device(), logits_.bytes());
  return host_logits_;
}

std::span<const float> LlamaGenerator::append_rows(std::span<const int32_t> tokens) {
  const int n = static_cast<int>(tokens.size());
  RECFORGE_CHECK(n > 0 && n <= model_.max_tokens(), "generation: append_rows takes 1 to ",
                 model_.max_tokens(), " tokens, got ", n);
  model_.forward_cached(tokens, cache_);
  const size_t count = static_cast<size_t>(n) * model_.config().vocab_size;
  if (row_logits_.size() < count) row_logits_ = Buffer<float>(model_.context().device(), count);
  model_.logits(row_logits_.data(), n);
  host_row_logits_.resize(count);
  copy_bytes(host_row_logits_.data(), Device::kCpu, row_logits_.data(), row_logits_.device(),
             count * sizeof(float));
  return host_row_logits_;
}

std::vector<int32_t> LlamaGenerator::generate(std::span<const int32_t> prompt,
                                              const GenerationOptions& options,
                                              const std::function<void(int32_t)>& on_token) {
  RECFORGE_CHECK(!prompt.empty(), "generation needs a prompt of at least one token");
  reset();
  return continue_generation(append(prompt), options, on_token);
}

std::vector<int32_t> LlamaGenerator::continue_generation(
    std::span<const float> next_logits, const GenerationOptions& options,
    const std::function<void(int32_t)>& on_token) {
  options.sampling.validate();
  RECFORGE_CHECK(options.max_new_tokens >= 0, "max_new_tokens must be >= 0, got ",
                 options.max_new_tokens);
  RECFORGE_CHECK(length() + options.max_new_tokens <= cache_.capacity(), "the prompt (", length(),
                 " tokens) and ", options.max_new_tokens, " new tokens exceed the context of ",
                 cache_.capacity(), " tokens");
  std::mt19937_64 rng(options.sampling.seed);
  std::vector<int32_t> generated;
  std::span<const float> logits = next_logits;
  for (int step = 0; step < options.max_new_tokens; ++step) {
    const int32_t token = sample_token(logits, options.sampling, rng);
    generated.push_back(token);
    if (on_token) on_token(token);
    const auto& stops = options.stop_tokens;
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) break;
    if (step + 1 < options.max_new_tokens) logits = append(std::span<const int32_t>(&token, 1));
  }
  return generated;
}

}  // namespace recforge
