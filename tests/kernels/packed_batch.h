// A packed batch for the attention tests: host-side offsets of sequences with the given lengths
// and the PackedSequences view of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/attention.h"

namespace recforge::testing {

struct Batch {
  std::vector<int32_t> offsets{0};
  int max_length = 0;
  explicit Batch(std::span<const int> lengths) {
    for (int length : lengths) {
      offsets.push_back(offsets.back() + length);
      max_length = std::max(max_length, length);
    }
  }
  int num_tokens() const { return offsets.back(); }
  PackedSequences view() const {
    return {offsets.data(), static_cast<int>(offsets.size()) - 1, num_tokens(), max_length};
  }
};

inline const char* mask_name(AttentionMask mask) {
  return mask == AttentionMask::kCausal ? "causal" : "bidirectional";
}

}  // namespace recforge::testing
