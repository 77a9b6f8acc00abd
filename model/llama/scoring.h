// The log-probability a model gives to continuations of prompts — Σ_t log p(c_t | prompt, c_<t) —
// the scoring a fine-tuned recommender uses for "Yes."/"No." answers and candidate ranking. The
// requests are packed into batches of up to the model's max_tokens (never split) and run through
// the packed forward; only the rows that predict a continuation token are read.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/llama/generator.h"
#include "model/llama/model.h"

namespace recforge {

struct ScoringRequest {
  std::span<const int32_t> prompt;        // at least one token
  std::span<const int32_t> continuation;  // at least one token
};

template <typename T>
std::vector<double> continuation_log_probs(LlamaModel<T>& model,
                                           std::span<const ScoringRequest> requests);

// The same for several continuations of one prompt, prefilling the prompt once into a key/value
// cache and rolling the cache back to it before each continuation (a prompt's Yes/No answers, a
// candidate list's titles); a continuation runs in one forward from the cache (all its tokens but
// the last), its rows' logits scoring its tokens.
class PromptScorer {
 public:
  PromptScorer(LlamaModel<float>& model, int max_context) : generator_(model, max_context) {}

  std::vector<double> score(std::span<const int32_t> prompt,
                            std::span<const std::vector<int32_t>> continuations);
  // Generates after the last scored prompt, reusing its cache (no second prefill).
  std::vector<int32_t> generate(const GenerationOptions& options);

 private:
  double score_continuation(std::span<const int32_t> continuation);

  LlamaGenerator generator_;
  int prompt_length_ = 0;
  std::vector<float> after_prompt_;  // next-token logits after the prompt
};

// log softmax(logits)[token], in double.
double log_prob_of(std::span<const float> logits, int32_t token);

}  // namespace recforge
