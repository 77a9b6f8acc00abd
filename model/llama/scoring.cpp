#include "model/llama/scoring.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"

namespace recforge {
namespace {

// prompt ++ continuation without its last token; the row before each continuation token
// targets it.
void add_request(PackedBatch& batch, const ScoringRequest& request) {
  std::vector<int32_t> tokens(request.prompt.begin(), request.prompt.end());
  tokens.insert(tokens.end(), request.continuation.begin(), request.continuation.end() - 1);
  std::vector<int32_t> targets(tokens.size(), kIgnoreIndex);
  std::copy(request.continuation.begin(), request.continuation.end(),
            targets.end() - request.continuation.size());
  batch.add_sequence(tokens, targets);
}

int tokens_of(const ScoringRequest& request) {
  return static_cast<int>(request.prompt.size() + request.continuation.size() - 1);
}

}  // namespace

template <typename T>
std::vector<double> continuation_log_probs(LlamaModel<T>& model,
                                           std::span<const ScoringRequest> requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    RECFORGE_CHECK(!requests[i].prompt.empty() && !requests[i].continuation.empty(),
                   "scoring request ", i, ": the prompt and the continuation need a token each");
    RECFORGE_CHECK(tokens_of(requests[i]) <= model.max_tokens(), "scoring request ", i, " has ",
                   tokens_of(requests[i]), " tokens, more than the model's max_tokens ",
                   model.max_tokens());
  }
  std::vector<double> scores;
  for (size_t first = 0; first < requests.size();) {
    PackedBatch host = empty_batch();
    size_t last = first;
    for (int used = 0;
         last < requests.size() && used + tokens_of(requests[last]) <= model.max_tokens(); ++last) {
      used += tokens_of(requests[last]);
      add_request(host, requests[last]);
    }
    const DeviceBatch batch(model.context().device(), host, model.config().batch_limits());
    model.forward(batch);
    const std::vector<double> losses = model.target_losses(batch);
    for (int b = 0; b < host.num_sequences(); ++b) {
      double sum = 0.0;
      for (int n = host.offsets[b]; n < host.offsets[b + 1]; ++n) sum -= losses[n];
      scores.push_back(sum);
    }
    first = last;
  }
  return scores;
}

double log_prob_of(std::span<const float> logits, int32_t token) {
  RECFORGE_CHECK(token >= 0 && static_cast<size_t>(token) < logits.size(), "token ", token,
                 " is outside the vocabulary of ", logits.size());
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(logit - max);
  return logits[token] - max - std::log(sum);
}

std::vector<double> PromptScorer::score(std::span<const int32_t> prompt,
                                        std::span<const std::vector<int32_t>> continuations) {
  RECFORGE_CHECK(!prompt.empty(), "scoring needs a prompt of at least one token");
  generator_.reset();
  const std::span<const float> after_prompt = generator_.append(prompt);
  after_prompt_.assign(after_prompt.begin(), after_prompt.end());
  prompt_length_ = static_cast<int>(prompt.size());
  std::vector<double> scores;
  for (const std::vector<int32_t>& continuation : continuations) {
    RECFORGE_CHECK(!continuation.empty(), "scoring needs continuations of at least one token");
    scores.push_back(score_continuation(continuation));
  }
  return scores;
}

double PromptScorer::score_continuation(std::span<const int32_t> continuation) {
  generator_.truncate(prompt_length_);
  double total = log_prob_of(after_prompt_, continuation[0]);
  const size_t vocab = after_prompt_.size();
  for (size_t begin = 1; begin < continuation.size();) {
    const size_t n = std::min<size_t>(continuation.size() - begin, generator_.max_chunk());
    const std::span<const float> rows = generator_.append_rows(continuation.subspan(begin - 1, n));
    for (size_t k = 0; k < n; ++k) {
      total += log_prob_of(rows.subspan(k * vocab, vocab), continuation[begin + k]);
    }
    begin += n;
  }
  return total;
}

std::vector<int32_t> PromptScorer::generate(const GenerationOptions& options) {
  RECFORGE_CHECK(prompt_length_ > 0, "PromptScorer::generate: no prompt scored yet");
  generator_.truncate(prompt_length_);
  return generator_.continue_generation(after_prompt_, options);
}

template std::vector<double> continuation_log_probs(LlamaModel<float>&,
                                                    std::span<const ScoringRequest>);
template std::vector<double> continuation_log_probs(LlamaModel<double>&,
                                                    std::span<const ScoringRequest>);

}  // namespace recforge
