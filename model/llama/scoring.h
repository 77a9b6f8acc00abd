// The log-probability a model gives to continuations of prompts — Σ_t log p(c_t | prompt, c_<t) —
// the scoring a fine-tuned recommender uses for "Yes."/"No." answers and candidate ranking. The
// requests are packed into batches of up to the model's max_tokens (never split) and run through
// the packed forward; only the rows that predict a continuation token are read.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/llama/model.h"

namespace recforge {

struct ScoringRequest {
  std::span<const int32_t> prompt;        // at least one token
  std::span<const int32_t> continuation;  // at least one token
};

template <typename T>
std::vector<double> continuation_log_probs(LlamaModel<T>& model,
                                           std::span<const ScoringRequest> requests);

}  // namespace recforge
