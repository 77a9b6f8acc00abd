// Training examples from the leave-one-out split: each user's training items cut into windows of
// at most `window_length` items (the most recent window always; with `sliding`, also the earlier
// non-overlapping windows of long histories), an epoch order that is a seeded shuffle of the
// windows, and micro-batches over that order (a fixed number of windows, or a token budget).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/data/split.h"
#include "train/tasks/objectives.h"

namespace recforge {

// A permutation of [0, count), the same for a (seed, epoch) on every machine (Fisher–Yates driven
// by the counter-based generator).
std::vector<uint32_t> shuffled_order(size_t count, uint64_t seed, int epoch);

// Start indices into `order` of consecutive micro-batches, plus order.size() at the end. A
// micro-batch holds `batch_size` examples, or, with token_budget > 0, as many as fit in it
// (an example larger than the budget goes alone). tokens(i) is example i's length.
template <typename TokensOf>
std::vector<size_t> plan_micro_batches(std::span<const uint32_t> order, int batch_size,
                                       int token_budget, const TokensOf& tokens) {
  std::vector<size_t> starts{0};
  int examples = 0;
  int64_t used = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t length = tokens(order[i]);
    const bool full = token_budget > 0 ? used + length > token_budget : examples == batch_size;
    if (full && examples > 0) {
      starts.push_back(i);
      examples = 0;
      used = 0;
    }
    ++examples;
    used += length;
  }
  if (order.size() > 0) starts.push_back(order.size());
  return starts;
}

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

  int32_t length(size_t window) const { return windows_[window].end - windows_[window].begin; }

 private:
  const LeaveOneOutSplit* split_;
  std::vector<Window> windows_;
  int64_t num_items_ = 0;
};

}  // namespace recforge
