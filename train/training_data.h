// Training examples from the leave-one-out split: each user's training items cut into windows of
// at most `window_length` items (the most recent window always; with `sliding`, also the earlier
// non-overlapping windows of long histories), an epoch order that is a seeded shuffle of the
// windows, and micro-batches over that order (a fixed number of windows, or a token budget).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/objectives.h"
#include "train/split.h"

namespace recforge {

struct Window {
  int32_t user;
  int32_t begin, end;  // [begin, end) of the user's training items
};

class TrainingWindows {
 public:
  // Windows shorter than `min_length` items are left out.
  TrainingWindows(const LeaveOneOutSplit& split, int32_t num_users, int window_length, bool sliding,
                  int min_length);

  size_t size() const { return windows_.size(); }
  int64_t num_items() const { return num_items_; }
  ItemSequence items(size_t window) const;

  // A permutation of the windows, the same for a (seed, epoch) on every machine (Fisher–Yates
  // driven by the counter-based generator).
  std::vector<uint32_t> epoch_order(uint64_t seed, int epoch) const;
  // Start indices into `order` of consecutive micro-batches, plus order.size() at the end. A
  // micro-batch holds `batch_size` windows, or, with token_budget > 0, as many as fit in it.
  std::vector<size_t> micro_batches(std::span<const uint32_t> order, int batch_size,
                                    int token_budget) const;

 private:
  const LeaveOneOutSplit* split_;
  std::vector<Window> windows_;
  int64_t num_items_ = 0;
};

}  // namespace recforge
