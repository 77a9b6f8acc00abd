// The leave-one-out split (the project's evaluation protocol): a user with n >= 3 chronological
// items trains on items[0, n-2), validates on items[n-2] and is tested on items[n-1]; a user with
// fewer items trains on all of them and is never evaluated.
//
//   positions   0 1 ... n-3 | n-2   | n-1
//   part        train        | valid | test
//   history for valid: [0, n-2)   for test: [0, n-1) (train + the valid item)
//
// Statistics used for training (popularity) come from the training part only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "train/data/dataset.h"

namespace recforge {

enum class Split { kValid, kTest };

// A view over a Dataset, which must outlive it.
class LeaveOneOutSplit {
 public:
  explicit LeaveOneOutSplit(const Dataset& dataset) : dataset_(&dataset) {}

  const Dataset& dataset() const { return *dataset_; }
  std::span<const int32_t> train_items(int32_t user) const;
  int32_t valid_target(int32_t user) const;  // -1 if the user is not evaluated
  int32_t test_target(int32_t user) const;   // -1 if the user is not evaluated
  int32_t target(int32_t user, Split which) const;
  // The items a model sees to predict `which`'s target: train items, plus the valid item for test
  // (all the user's items for a user who is not evaluated).
  std::span<const int32_t> history(int32_t user, Split which) const;
  // Users with a target for `which` (the same users for both), in increasing id order.
  std::vector<int32_t> evaluation_users(Split which) const;
  // [num_items] how often each item occurs in the training part.
  std::vector<int64_t> train_item_counts() const;

 private:
  static constexpr size_t kMinEvaluated = 3;
  const Dataset* dataset_;
};

}  // namespace recforge
