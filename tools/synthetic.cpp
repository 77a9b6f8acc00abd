#include "tools/synthetic.h"

#include <random>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"

namespace recforge {

SyntheticSource::SyntheticSource(const SyntheticSequences& spec) : spec_(spec) {
  RECFORGE_CHECK(spec.vocab_size > 1 && spec.successors > 0, "synthetic sequences need a ",
                 "vocabulary of at least 2 tokens and at least one successor");
  std::mt19937_64 rng(spec.seed);
  std::uniform_int_distribution<int32_t> token(0, spec.vocab_size - 1);
  successor_table_.resize(static_cast<size_t>(spec.vocab_size) * spec.successors);
  for (int32_t& next : successor_table_) next = token(rng);
}

PackedBatch SyntheticSource::next_batch(int count, int min_length, int max_length) {
  RECFORGE_CHECK(0 < min_length && min_length <= max_length, "bad synthetic length range [",
                 min_length, ", ", max_length, "]");
  std::mt19937_64 rng(spec_.seed ^ (0x9E3779B97F4A7C15ull * ++counter_));
  std::uniform_int_distribution<int32_t> token(0, spec_.vocab_size - 1);
  std::uniform_int_distribution<int> length(min_length, max_length);
  std::uniform_int_distribution<int> successor(0, spec_.successors - 1);
  std::bernoulli_distribution jump(spec_.jump_probability);
  PackedBatch batch = empty_batch();
  std::vector<int32_t> tokens, targets;
  for (int s = 0; s < count; ++s) {
    int n = length(rng);
    tokens.assign(1, token(rng));
    while (static_cast<int>(tokens.size()) < n) {
      int32_t previous = tokens.back();
      tokens.push_back(jump(rng) ? token(rng)
                                 : successor_table_[previous * spec_.successors + successor(rng)]);
    }
    targets.assign(tokens.begin() + 1, tokens.end());
    targets.push_back(kIgnoreIndex);
    batch.add_sequence(tokens, targets);
  }
  return batch;
}

}  // namespace recforge
