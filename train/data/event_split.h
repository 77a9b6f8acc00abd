// Per-user splits of the event log for task examples (train/tasks/sft_tasks.h): each user's events,
// in the dataset's chronological order, are a training prefix, then validation events, then test
// events:
//
//   event index   0 .. valid_begin-1 | valid_begin .. test_begin-1 | test_begin .. n-1
//   part          train              | valid                       | test
//
// Two constructions:
//   chronological   for rated logs with timestamps (MovieLens): the last max(1, ⌊test_fraction·n⌋)
//                   events are test, the max(1, ⌊valid_fraction·n⌋) before them valid (none when
//                   valid_fraction = 0), the rest train. A user without at least one training
//                   event left trains on everything and has no held-out events.
//   leave_one_out   the project's protocol (train/data/split.h): a user with n >= 3 events
//   validates on
//                   event n-2 and is tested on event n-1.
//
// The history of event j is what a prompt that predicts event j may show: the events [0, h) with
//   chronological:  h = the first index whose timestamp equals timestamps[j], i.e. exactly the
//                   events strictly earlier in time. Events in the same second are simultaneous and
//                   never shown for one another, whatever their file order (51% of adjacent
//                   MovieLens-100K events share a second).
//   leave_one_out:  h = j (index order; ties in time keep file order, as
//   LeaveOneOutSplit::history).
// Without timestamps the chronological split uses index order too. A training event's history lies
// inside the training part (the part is a prefix), so no held-out event ever reaches training.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "train/data/dataset.h"

namespace recforge {

enum class SplitPart { kTrain, kValid, kTest };

// "train" | "valid" | "test"; anything else throws.
SplitPart parse_split_part(std::string_view name);
const char* split_part_name(SplitPart part);

struct ChronologicalSplitOptions {
  double valid_fraction = 0.1;  // in [0, 1)
  double test_fraction = 0.1;   // in (0, 1)
};

// [begin, end) indices into a user's events (Dataset::items(user) and its parallel arrays).
struct EventRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// A view over a Dataset, which must outlive it.
class EventSplit {
 public:
  // Throws when the dataset's timestamps are not non-decreasing within a user.
  static EventSplit chronological(const Dataset& data, const ChronologicalSplitOptions& options);
  static EventSplit leave_one_out(const Dataset& data);

  const Dataset& dataset() const { return *data_; }
  // True when histories end strictly before the target's timestamp (chronological with times).
  bool strict_time() const { return strict_time_; }
  EventRange range(int32_t user, SplitPart part) const;
  // The history of the user's event `index` is events [0, history_end(user, index)).
  int64_t history_end(int32_t user, int64_t index) const;
  // Events of `part` summed over users.
  int64_t count(SplitPart part) const;

 private:
  EventSplit(const Dataset& data, bool strict_time);

  const Dataset* data_;
  bool strict_time_;
  std::vector<int32_t> valid_begin_;  // [num_users]
  std::vector<int32_t> test_begin_;   // [num_users]
};

}  // namespace recforge
