#include "train/data/split.h"

namespace recforge {

std::span<const int32_t> LeaveOneOutSplit::train_items(int32_t user) const {
  std::span<const int32_t> items = dataset_->items(user);
  return items.size() < kMinEvaluated ? items : items.first(items.size() - 2);
}

int32_t LeaveOneOutSplit::valid_target(int32_t user) const {
  std::span<const int32_t> items = dataset_->items(user);
  return items.size() < kMinEvaluated ? -1 : items[items.size() - 2];
}

int32_t LeaveOneOutSplit::test_target(int32_t user) const {
  std::span<const int32_t> items = dataset_->items(user);
  return items.size() < kMinEvaluated ? -1 : items[items.size() - 1];
}

int32_t LeaveOneOutSplit::target(int32_t user, Split which) const {
  return which == Split::kValid ? valid_target(user) : test_target(user);
}

std::span<const int32_t> LeaveOneOutSplit::history(int32_t user, Split which) const {
  std::span<const int32_t> items = dataset_->items(user);
  if (items.size() < kMinEvaluated) return items;
  return items.first(items.size() - (which == Split::kValid ? 2 : 1));
}

std::vector<int32_t> LeaveOneOutSplit::evaluation_users(Split) const {
  std::vector<int32_t> users;
  for (int32_t u = 0; u < dataset_->num_users(); ++u) {
    if (dataset_->items(u).size() >= kMinEvaluated) users.push_back(u);
  }
  return users;
}

std::vector<int64_t> LeaveOneOutSplit::train_item_counts() const {
  std::vector<int64_t> counts(dataset_->num_items(), 0);
  for (int32_t u = 0; u < dataset_->num_users(); ++u) {
    for (int32_t item : train_items(u)) ++counts[item];
  }
  return counts;
}

}  // namespace recforge
