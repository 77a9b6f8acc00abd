#include "train/tasks/objectives.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"
#include "kernels/math.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

void append_tokens(PackedBatch& batch, ItemSequence items, int max_len) {
  std::vector<int32_t> tokens(items.size());
  std::transform(items.begin(), items.end(), tokens.begin(), item_token);
  batch.add_recent_sequence(tokens, max_len);
}

// Positions to mask: the first `count` entries of a Philox-keyed shuffle of 0 .. n-1.
std::vector<int32_t> masked_positions(int32_t n, int32_t count, uint64_t seed, uint64_t stream,
                                      uint64_t sequence) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (int32_t i = 0; i < count; ++i) {
    const float u = philox_uniform(seed, stream, (sequence << 20) + i);
    const int32_t j = i + std::min(n - i - 1, static_cast<int32_t>(u * (n - i)));
    std::swap(order[i], order[j]);
  }
  order.resize(count);
  return order;
}

}  // namespace

ObjectiveBatch make_next_items_batch(std::span<const ItemSequence> sequences, int next_k,
                                     int max_len) {
  RECFORGE_CHECK(next_k >= 1, "next_k must be at least 1, got ", next_k);
  ObjectiveBatch batch{empty_batch(), {}, next_k, 0};
  for (ItemSequence items : sequences) {
    const int32_t n = static_cast<int32_t>(items.size());
    if (n < 2) continue;
    append_tokens(batch.inputs, items.first(n - 1), max_len);
    for (int32_t i = 0; i + 1 < n; ++i) {
      for (int k = 1; k <= next_k; ++k) {
        const bool exists = i + k < n;
        batch.targets.push_back(exists ? items[i + k] : kIgnoreIndex);
        batch.num_targets += exists;
      }
    }
  }
  return batch;
}

ObjectiveBatch make_masked_items_batch(std::span<const ItemSequence> sequences, float mask_ratio,
                                       int max_len, uint64_t seed, uint64_t stream,
                                       size_t first_index) {
  RECFORGE_CHECK(mask_ratio > 0.0f && mask_ratio <= 1.0f, "mask_ratio must be in (0, 1], got ",
                 mask_ratio);
  ObjectiveBatch batch{empty_batch(), {}, 1, 0};
  for (size_t s = 0; s < sequences.size(); ++s) {
    ItemSequence items = sequences[s];
    const int32_t n = static_cast<int32_t>(items.size());
    if (n < 1) continue;
    const int64_t first = batch.inputs.num_tokens();
    append_tokens(batch.inputs, items, max_len);
    batch.targets.resize(first + n, kIgnoreIndex);
    const int32_t count = std::clamp(static_cast<int32_t>(std::ceil(mask_ratio * n)), 1, n);
    for (int32_t i : masked_positions(n, count, seed, stream, first_index + s)) {
      batch.inputs.tokens[first + i] = kMaskToken;
      batch.targets[first + i] = items[i];
    }
    batch.num_targets += count;
  }
  return batch;
}

}  // namespace recforge
