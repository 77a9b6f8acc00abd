#include "model/llama/scoring.h"

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

template std::vector<double> continuation_log_probs(LlamaModel<float>&,
                                                    std::span<const ScoringRequest>);
template std::vector<double> continuation_log_probs(LlamaModel<double>&,
                                                    std::span<const ScoringRequest>);

}  // namespace recforge
