// Event splits: the chronological split's part sizes, histories that end strictly before the
// target's second, and the leave-one-out construction agreeing with LeaveOneOutSplit.
#include "train/data/event_split.h"

#include <gtest/gtest.h>

#include <sstream>

#include "kernels/check.h"
#include "tests/train/data/rated_log.h"
#include "train/data/split.h"

namespace recforge {
namespace {

using EventSplitTest = RatedLogTest;

// One user `u<n>` per count n, with n events one second apart.
std::string users_with_lengths(std::initializer_list<int> lengths) {
  std::ostringstream csv;
  for (int n : lengths) {
    for (int i = 0; i < n; ++i) csv << "u" << n << "," << i << "," << 100 + i << ",3\n";
  }
  return csv.str();
}

struct Parts {
  int64_t train, valid, test;
  bool operator==(const Parts&) const = default;
};

Parts parts_of(const EventSplit& split, int32_t user) {
  return {split.range(user, SplitPart::kTrain).size(), split.range(user, SplitPart::kValid).size(),
          split.range(user, SplitPart::kTest).size()};
}

TEST_F(EventSplitTest, ChronologicalHoldsOutTheLastFractionsAtLeastOneEach) {
  Dataset data = rated(users_with_lengths({3, 10, 19, 20, 30}));
  EventSplit split = EventSplit::chronological(data, {});
  EXPECT_EQ(parts_of(split, *data.find_user("u3")), (Parts{1, 1, 1}));
  EXPECT_EQ(parts_of(split, *data.find_user("u10")), (Parts{8, 1, 1}));
  EXPECT_EQ(parts_of(split, *data.find_user("u19")), (Parts{17, 1, 1}));
  EXPECT_EQ(parts_of(split, *data.find_user("u20")), (Parts{16, 2, 2}));
  EXPECT_EQ(parts_of(split, *data.find_user("u30")), (Parts{24, 3, 3}));
  EXPECT_EQ(split.count(SplitPart::kTest), 1 + 1 + 1 + 2 + 3);
}

TEST_F(EventSplitTest, ChronologicalPartsAreConsecutiveTrainValidTest) {
  Dataset data = rated(users_with_lengths({20}));
  EventSplit split = EventSplit::chronological(data, {0.1, 0.2});
  EXPECT_EQ(split.range(0, SplitPart::kTrain).begin, 0);
  EXPECT_EQ(split.range(0, SplitPart::kTrain).end, 14);
  EXPECT_EQ(split.range(0, SplitPart::kValid).begin, 14);
  EXPECT_EQ(split.range(0, SplitPart::kValid).end, 16);
  EXPECT_EQ(split.range(0, SplitPart::kTest).begin, 16);
  EXPECT_EQ(split.range(0, SplitPart::kTest).end, 20);
}

TEST_F(EventSplitTest, UsersTooShortForATrainingEventTrainOnEverything) {
  Dataset data = rated(users_with_lengths({1, 2}));
  EventSplit split = EventSplit::chronological(data, {});
  EXPECT_EQ(parts_of(split, *data.find_user("u1")), (Parts{1, 0, 0}));
  EXPECT_EQ(parts_of(split, *data.find_user("u2")), (Parts{2, 0, 0}));
}

TEST_F(EventSplitTest, ZeroValidFractionLeavesNoValidEvents) {
  Dataset data = rated(users_with_lengths({2, 10}));
  EventSplit split = EventSplit::chronological(data, {0.0, 0.1});
  EXPECT_EQ(parts_of(split, *data.find_user("u2")), (Parts{1, 0, 1}));
  EXPECT_EQ(parts_of(split, *data.find_user("u10")), (Parts{9, 0, 1}));
}

TEST_F(EventSplitTest, RejectsFractionsOutOfRange) {
  Dataset data = rated(users_with_lengths({5}));
  EXPECT_THROW(EventSplit::chronological(data, {0.1, 0.0}), Error);
  EXPECT_THROW(EventSplit::chronological(data, {0.1, 1.0}), Error);
  EXPECT_THROW(EventSplit::chronological(data, {-0.1, 0.1}), Error);
}

TEST_F(EventSplitTest, HistoryEndsBeforeTheTargetsSecond) {
  // Events at times 100, 200, 200, 200, 300: the three events of second 200 see only the first.
  Dataset data = rated("a,0,100,3\na,1,200,3\na,2,200,3\na,3,200,3\na,4,300,3\n");
  EventSplit split = EventSplit::chronological(data, {});
  EXPECT_TRUE(split.strict_time());
  EXPECT_EQ(split.history_end(0, 0), 0);
  EXPECT_EQ(split.history_end(0, 1), 1);
  EXPECT_EQ(split.history_end(0, 2), 1);
  EXPECT_EQ(split.history_end(0, 3), 1);
  EXPECT_EQ(split.history_end(0, 4), 4);
}

TEST_F(EventSplitTest, WithoutTimestampsHistoryIsIndexOrder) {
  PrepareOptions options;
  options.format = "seq";
  Dataset data = prepare("a 0 1 2 3\n", options);
  EventSplit split = EventSplit::chronological(data, {});
  EXPECT_FALSE(split.strict_time());
  for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(split.history_end(0, j), j);
}

TEST_F(EventSplitTest, LeaveOneOutMatchesLeaveOneOutSplit) {
  Dataset data = rated(users_with_lengths({1, 2, 3, 7}) + "u7,x,106,3\n");  // a tie at the end
  EventSplit split = EventSplit::leave_one_out(data);
  LeaveOneOutSplit reference(data);
  EXPECT_FALSE(split.strict_time());
  for (int32_t u = 0; u < data.num_users(); ++u) {
    std::span<const int32_t> items = data.items(u);
    EXPECT_EQ(split.range(u, SplitPart::kTrain).size(),
              static_cast<int64_t>(reference.train_items(u).size()));
    EventRange valid = split.range(u, SplitPart::kValid);
    EventRange test = split.range(u, SplitPart::kTest);
    if (reference.valid_target(u) < 0) {
      EXPECT_EQ(valid.size() + test.size(), 0);
      continue;
    }
    ASSERT_EQ(valid.size(), 1);
    ASSERT_EQ(test.size(), 1);
    EXPECT_EQ(items[valid.begin], reference.valid_target(u));
    EXPECT_EQ(items[test.begin], reference.test_target(u));
    EXPECT_EQ(split.history_end(u, valid.begin),
              static_cast<int64_t>(reference.history(u, Split::kValid).size()));
    EXPECT_EQ(split.history_end(u, test.begin),
              static_cast<int64_t>(reference.history(u, Split::kTest).size()));
  }
}

TEST(SplitPartNames, ParseAndNameRoundTrip) {
  for (SplitPart part : {SplitPart::kTrain, SplitPart::kValid, SplitPart::kTest}) {
    EXPECT_EQ(parse_split_part(split_part_name(part)), part);
  }
  EXPECT_THROW(parse_split_part("validation"), Error);
}

}  // namespace
}  // namespace recforge
