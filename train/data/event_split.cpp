#include "train/data/event_split.h"

#include <algorithm>
#include <cmath>

#include "kernels/check.h"

namespace recforge {
namespace {

// max(minimum, ⌊fraction·n⌋); the small slack keeps 0.1·30 from landing just below 3.
int32_t held_out_count(double fraction, int32_t n, int32_t minimum) {
  const auto count = static_cast<int32_t>(std::floor(fraction * n + 1e-9));
  return std::max(minimum, count);
}

}  // namespace

SplitPart parse_split_part(std::string_view name) {
  if (name == "train") return SplitPart::kTrain;
  if (name == "valid") return SplitPart::kValid;
  if (name == "test") return SplitPart::kTest;
  throw Error(concat("unknown split part \"", name, "\" (expected train, valid or test)"));
}

const char* split_part_name(SplitPart part) {
  switch (part) {
    case SplitPart::kTrain:
      return "train";
    case SplitPart::kValid:
      return "valid";
    case SplitPart::kTest:
      return "test";
  }
  return "?";
}

EventSplit::EventSplit(const Dataset& data, bool strict_time)
    : data_(&data),
      strict_time_(strict_time),
      valid_begin_(data.num_users()),
      test_begin_(data.num_users()) {}

EventSplit EventSplit::chronological(const Dataset& data,
                                     const ChronologicalSplitOptions& options) {
  RECFORGE_CHECK(options.test_fraction > 0.0 && options.test_fraction < 1.0,
                 "test_fraction must be in (0, 1), got ", options.test_fraction);
  RECFORGE_CHECK(options.valid_fraction >= 0.0 && options.valid_fraction < 1.0,
                 "valid_fraction must be in [0, 1), got ", options.valid_fraction);
  EventSplit split(data, data.has_timestamps());
  for (int32_t u = 0; u < data.num_users(); ++u) {
    std::span<const int64_t> times = data.timestamps(u);
    RECFORGE_CHECK(std::is_sorted(times.begin(), times.end()), data.directory().string(),
                   ": the timestamps of user ", data.user_name(u), " are not in order");
    const auto n = static_cast<int32_t>(data.items(u).size());
    const int32_t test = held_out_count(options.test_fraction, n, 1);
    const int32_t valid =
        options.valid_fraction > 0.0 ? held_out_count(options.valid_fraction, n, 1) : 0;
    const bool evaluated = test + valid < n;
    split.test_begin_[u] = evaluated ? n - test : n;
    split.valid_begin_[u] = evaluated ? n - test - valid : n;
  }
  return split;
}

EventSplit EventSplit::leave_one_out(const Dataset& data) {
  EventSplit split(data, false);
  for (int32_t u = 0; u < data.num_users(); ++u) {
    const auto n = static_cast<int32_t>(data.items(u).size());
    const bool evaluated = n >= 3;
    split.test_begin_[u] = evaluated ? n - 1 : n;
    split.valid_begin_[u] = evaluated ? n - 2 : n;
  }
  return split;
}

EventRange EventSplit::range(int32_t user, SplitPart part) const {
  RECFORGE_CHECK(user >= 0 && user < data_->num_users(), "user ", user, " is outside [0, ",
                 data_->num_users(), ")");
  const int64_t n = static_cast<int64_t>(data_->items(user).size());
  switch (part) {
    case SplitPart::kTrain:
      return {0, valid_begin_[user]};
    case SplitPart::kValid:
      return {valid_begin_[user], test_begin_[user]};
    case SplitPart::kTest:
      return {test_begin_[user], n};
  }
  return {};
}

int64_t EventSplit::history_end(int32_t user, int64_t index) const {
  if (!strict_time_) return index;
  std::span<const int64_t> times = data_->timestamps(user);
  return std::lower_bound(times.begin(), times.begin() + index, times[index]) - times.begin();
}

int64_t EventSplit::count(SplitPart part) const {
  int64_t total = 0;
  for (int32_t u = 0; u < data_->num_users(); ++u) total += range(u, part).size();
  return total;
}

}  // namespace recforge
