#include "train/tasks/training_data.h"

#include <algorithm>
#include <numeric>

#include "kernels/math.h"

namespace recforge {

TrainingWindows::TrainingWindows(const LeaveOneOutSplit& split, int32_t num_users,
                                 int window_length, bool sliding, int min_length)
    : split_(&split) {
  for (int32_t user = 0; user < num_users; ++user) {
    int32_t end = static_cast<int32_t>(split.train_items(user).size());
    do {
      const int32_t begin = std::max(0, end - window_length);
      if (end - begin >= min_length) {
        windows_.push_back({user, begin, end});
        num_items_ += end - begin;
      }
      end = begin;
    } while (sliding && end > 0);
  }
}

ItemSequence TrainingWindows::items(size_t window) const {
  const Window& w = windows_[window];
  return split_->train_items(w.user).subspan(w.begin, w.end - w.begin);
}

std::vector<uint32_t> shuffled_order(size_t count, uint64_t seed, int epoch) {
  std::vector<uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0u);
  for (size_t i = order.size(); i > 1; --i) {
    const float u = philox_uniform(seed, 0x5eed0000ull + static_cast<uint64_t>(epoch), i);
    const size_t j = std::min(i - 1, static_cast<size_t>(u * static_cast<float>(i)));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

}  // namespace recforge
