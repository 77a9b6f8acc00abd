// Generation with a key/value cache against the model's full forward: the cached path (prefill in
// chunks, then one token at a time) gives the logits the packed forward gives for the whole
// sequence, greedy generation picks each step's argmax of a full recomputation, and sampling is
// reproducible from its seed. Also: a frozen base owns no gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/context.h"
#include "model/llama/generator.h"
#include "model/llama/scoring.h"
#include "tests/model/llama/small_llama.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

LlamaConfig small_config() { return testing::small_llama_config(61); }

// A model with random weights (std 0.3: peaked logits, so argmax ties are practically impossible).
std::unique_ptr<LlamaModel<float>> random_model(const LlamaConfig& config, int max_tokens,
                                                uint64_t seed) {
  auto model = std::make_unique<LlamaModel<float>>(Context::cpu(), config, max_tokens, false);
  model->load_parameters(llama_initial_parameters(model->layout(), seed, 0.3f));
  return model;
}

// Logits [n, V] of every position of `tokens` from the packed (training) forward.
std::vector<float> full_logits(LlamaModel<float>& model, std::span<const int32_t> tokens) {
  PackedBatch host = empty_batch();
  host.add_sequence(tokens);
  DeviceBatch batch(Device::kCpu, host, model.config().batch_limits());
  model.forward(batch);
  std::vector<float> logits(tokens.size() * model.config().vocab_size);
  model.logits(logits.data(), static_cast<int>(tokens.size()));
  return logits;
}

TEST(LlamaGenerationTest, CachedChunksGiveTheFullForwardsLogits) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, rng());
  const std::vector<int32_t> tokens = testing::random_ints(rng, 23, 0, config.vocab_size);
  const std::vector<float> expected = full_logits(*model, tokens);

  auto chunked = random_model(config, 4, 0);  // prefill runs in chunks of 4 tokens
  chunked->parameters().upload(model->parameters().download());
  LlamaGenerator generator(*chunked, 64);
  const int V = config.vocab_size;
  std::span<const float> logits = generator.append(std::span(tokens).first(10));
  std::vector<float> got(logits.begin(), logits.end());
  std::vector<float> want(expected.begin() + 9 * V, expected.begin() + 10 * V);
  for (size_t i = 10; i < tokens.size(); ++i) {
    logits = generator.append(std::span(tokens).subspan(i, 1));
    got.insert(got.end(), logits.begin(), logits.end());
    want.insert(want.end(), expected.begin() + i * V, expected.begin() + (i + 1) * V);
  }
  std::vector<double> reference(want.begin(), want.end());
  const double error = testing::relative_error(got, reference);
  testing::report_error("llama.generation.cached_vs_full.logits", error);
  EXPECT_LT(error, 1e-5);
}

TEST(LlamaGenerationTest, GreedyGenerationPicksTheArgmaxOfAFullRecomputation) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, rng());
  const std::vector<int32_t> prompt = testing::random_ints(rng, 7, 0, config.vocab_size);
  LlamaGenerator generator(*model, 64);
  GenerationOptions options;
  options.max_new_tokens = 12;
  const std::vector<int32_t> generated = generator.generate(prompt, options);
  ASSERT_EQ(generated.size(), 12u);

  std::vector<int32_t> sequence = prompt;
  for (int32_t token : generated) {
    const std::vector<float> logits = full_logits(*model, sequence);
    auto last = logits.end() - config.vocab_size;
    EXPECT_EQ(token, std::max_element(last, logits.end()) - last);
    sequence.push_back(token);
  }
}

TEST(LlamaGenerationTest, GenerationStopsAfterAStopToken) {
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, 5);
  LlamaGenerator generator(*model, 64);
  GenerationOptions options;
  options.max_new_tokens = 10;
  const std::vector<int32_t> prompt{1, 2, 3};
  const std::vector<int32_t> free_run = generator.generate(prompt, options);
  options.stop_tokens = {free_run[2]};
  const std::vector<int32_t> stopped = generator.generate(prompt, options);
  const auto first_stop = std::find(free_run.begin(), free_run.end(), free_run[2]);
  EXPECT_EQ(stopped, std::vector<int32_t>(free_run.begin(), first_stop + 1));
}

TEST(LlamaGenerationTest, SamplingIsReproducibleFromItsSeed) {
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, 9);
  LlamaGenerator generator(*model, 64);
  GenerationOptions options;
  options.max_new_tokens = 16;
  options.sampling = {false, 1.5f, 0.9f, 42};
  const std::vector<int32_t> prompt{4, 5, 6};
  const std::vector<int32_t> first = generator.generate(prompt, options);
  EXPECT_EQ(generator.generate(prompt, options), first);
  options.sampling.seed = 43;
  EXPECT_NE(generator.generate(prompt, options), first);
}

TEST(LlamaGenerationTest, TopPOfAlmostZeroIsGreedy) {
  std::mt19937_64 rng(3);
  const std::vector<float> logits{0.1f, 2.0f, -1.0f, 1.9f};
  const SamplingOptions nucleus{false, 1.0f, 1e-6f, 0};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits, nucleus, rng), 1);
}

TEST(LlamaGenerationTest, APromptBeyondTheContextIsRefused) {
  const LlamaConfig config = small_config();
  auto model = random_model(config, 8, 1);
  LlamaGenerator generator(*model, 8);
  GenerationOptions options;
  options.max_new_tokens = 4;
  const std::vector<int32_t> prompt(5, 1);
  EXPECT_THROW(generator.generate(prompt, options), Error);
}

// log p(continuation | prompt) from the full forward's logits, in double on the host.
double log_prob_from_logits(LlamaModel<float>& model, const std::vector<int32_t>& prompt,
                            const std::vector<int32_t>& continuation) {
  std::vector<int32_t> sequence = prompt;
  sequence.insert(sequence.end(), continuation.begin(), continuation.end());
  const std::vector<float> logits = full_logits(model, sequence);
  const int V = model.config().vocab_size;
  double total = 0.0;
  for (size_t k = 0; k < continuation.size(); ++k) {
    const float* row = logits.data() + (prompt.size() - 1 + k) * V;
    const double max = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += std::exp(row[v] - max);
    total += row[continuation[k]] - max - std::log(sum);
  }
  return total;
}

TEST(LlamaScoringTest, ContinuationLogProbsMatchTheFullLogits) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, rng());
  std::vector<std::vector<int32_t>> prompts, continuations;
  for (int length : {5, 1, 12}) {
    prompts.push_back(testing::random_ints(rng, length, 0, config.vocab_size));
    for (int c : {1, 3}) {
      continuations.push_back(testing::random_ints(rng, c, 0, config.vocab_size));
    }
  }
  std::vector<ScoringRequest> requests;
  for (size_t i = 0; i < continuations.size(); ++i) {
    requests.push_back({prompts[i / 2], continuations[i]});
  }
  const std::vector<double> scores = continuation_log_probs(*model, std::span(requests));
  auto small_batches = random_model(config, 16, 0);  // fewer requests per batch
  small_batches->parameters().upload(model->parameters().download());
  const std::vector<double> split = continuation_log_probs(*small_batches, std::span(requests));
  ASSERT_EQ(scores.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const double expected = log_prob_from_logits(*model, prompts[i / 2], continuations[i]);
    EXPECT_NEAR(scores[i], expected, 1e-4 * std::abs(expected)) << "request " << i;
    EXPECT_NEAR(split[i], scores[i], 1e-4 * std::abs(expected)) << "request " << i;
  }
}

TEST(LlamaScoringTest, APromptScorerSharingTheCacheGivesThePackedScores) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = small_config();
  auto model = random_model(config, 64, rng());
  const std::vector<int32_t> prompt = testing::random_ints(rng, 11, 0, config.vocab_size);
  std::vector<std::vector<int32_t>> continuations;
  std::vector<ScoringRequest> requests;
  for (int length : {1, 4, 2, 10}) {  // 10: appended in chunks of the cached model's 8
    continuations.push_back(testing::random_ints(rng, length, 0, config.vocab_size));
  }
  for (const auto& c : continuations) requests.push_back({prompt, c});
  const std::vector<double> packed = continuation_log_probs(*model, std::span(requests));
  auto cached_model = random_model(config, 8, 0);  // the prompt prefilled in two chunks
  cached_model->parameters().upload(model->parameters().download());
  PromptScorer scorer(*cached_model, 32);
  const std::vector<double> cached = scorer.score(prompt, continuations);
  ASSERT_EQ(cached.size(), packed.size());
  for (size_t i = 0; i < packed.size(); ++i) {
    EXPECT_NEAR(cached[i], packed[i], 1e-4 * std::abs(packed[i])) << "continuation " << i;
  }
}

TEST(LlamaScoringTest, GeneratingAfterScoringContinuesFromThePrompt) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = small_config();
  auto model = random_model(config, 8, rng());
  const std::vector<int32_t> prompt = testing::random_ints(rng, 11, 0, config.vocab_size);
  GenerationOptions options;
  options.max_new_tokens = 6;
  LlamaGenerator generator(*model, 32);
  const std::vector<int32_t> expected = generator.generate(prompt, options);
  PromptScorer scorer(*model, 32);
  const std::vector<std::vector<int32_t>> continuations = {
      testing::random_ints(rng, 5, 0, config.vocab_size)};
  scorer.score(prompt, continuations);
  EXPECT_EQ(scorer.generate(options), expected);
}

TEST(LlamaScoringTest, ARequestLongerThanTheBatchIsRefused) {
  auto model = random_model(small_config(), 4, 0);
  const std::vector<int32_t> prompt(4, 1), continuation(2, 2);
  const ScoringRequest request{prompt, continuation};
  EXPECT_THROW(continuation_log_probs(*model, std::span(&request, 1)), Error);
}

TEST(LlamaModelTest, AFrozenBaseOwnsNoGradients) {
  auto model = random_model(small_config(), 8, 1);
  EXPECT_TRUE(model->base_frozen());
  EXPECT_THROW(model->gradients(), Error);
  model->set_base_frozen(false);
  EXPECT_EQ(model->gradients().size(), static_cast<size_t>(model->layout().total_size()));
}

}  // namespace
}  // namespace recforge
