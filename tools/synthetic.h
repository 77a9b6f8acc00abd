// Generated token sequences with planted sequential structure, for the demo job and benchmarks:
// every sequence walks a fixed random successor table (each token has a few likely successors),
// with occasional random jumps, so a model that learns the transitions beats a frequency count.
#pragma once

#include <cstdint>
#include <vector>

#include "model/batch.h"

namespace recforge {

struct SyntheticSequences {
  int vocab_size = 1000;
  int successors = 3;  // likely next tokens per token
  float jump_probability = 0.1f;
  uint64_t seed = 1;
};

class SyntheticSource {
 public:
  explicit SyntheticSource(const SyntheticSequences& spec);
  // A packed batch of `count` sequences with lengths uniform in [min_length, max_length]; each
  // position's target is the next token (the last position has none).
  PackedBatch next_batch(int count, int min_length, int max_length);

 private:
  SyntheticSequences spec_;
  std::vector<int32_t> successor_table_;  // [vocab_size, successors]
  uint64_t counter_ = 0;
};

}  // namespace recforge
