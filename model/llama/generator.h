// Text generation with a key/value cache: the prompt is prefilled in chunks of the model's
// max_tokens, then one token per step; each step's logits come from the last row only. Sampling is
// greedy (argmax, the lowest id on ties) or temperature + nucleus (top-p) from a seeded generator,
// so a seed reproduces a run.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "model/llama/model.h"

namespace recforge {

struct SamplingOptions {
  bool greedy = true;
  float temperature = 1.0f;  // > 0
  float top_p = 1.0f;        // (0, 1]: sample from the smallest set of tokens holding this mass
  uint64_t seed = 0;

  // Throws recforge::Error naming the first invalid field.
  void validate() const;
};

// The next token from logits [V]: argmax when greedy, else a draw from softmax(logits / T) cut to
// its top-p nucleus.
int32_t sample_token(std::span<const float> logits, const SamplingOptions& options,
                     std::mt19937_64& rng);

struct GenerationOptions {
  int max_new_tokens = 128;
  SamplingOptions sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one (it is included)
};

class LlamaGenerator {
 public:
  // Generates with `model`'s weights (and adapters); sequences up to `max_context` tokens.
  LlamaGenerator(LlamaModel<float>& model, int max_context);

  // Forgets the sequence so far.
  void reset() { cache_.clear(); }
  // Goes back to the sequence's first `length` tokens.
  void truncate(int length) { cache_.truncate(length); }
  int length() const { return cache_.length(); }
  // The most tokens append_rows takes at once.
  int max_chunk() const { return model_.max_tokens(); }
  // Appends tokens to the sequence; returns the next-token logits [V] after the last one.
  std::span<const float> append(std::span<const int32_t> tokens);
  // Appends up to the model's max_tokens tokens in one forward; returns the next-token logits
  // after each of them, [tokens.size(), V] row-major (a continuation scored in one pass).
  std::span<const float> append_rows(std::span<const int32_t> tokens);
  // Prefills `prompt` (after a reset) and generates; `on_token` sees each new token as it comes.
  std::vector<int32_t> generate(std::span<const int32_t> prompt, const GenerationOptions& options,
                                const std::function<void(int32_t)>& on_token = {});
  // Generates after the sequence so far, whose next-token logits are `next_logits` (a prompt
  // already in the cache, as a PromptScorer leaves it).
  std::vector<int32_t> continue_generation(std::span<const float> next_logits,
                                           const GenerationOptions& options,
                                           const std::function<void(int32_t)>& on_token = {});

 private:
  LlamaModel<float>& model_;
  LlamaKvCache<float> cache_;
  Buffer<float> logits_;
  std::vector<float> host_logits_;
  Buffer<float> row_logits_;  // [rows, V], grown as append_rows needs
  std::vector<float> host_row_logits_;
};

}  // namespace recforge
