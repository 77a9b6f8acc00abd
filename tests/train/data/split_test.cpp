// The leave-one-out split: targets, histories, evaluated users, and that no valid or test
// position ever reaches the training part or its statistics.
#include "train/data/split.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "train/data/log_synth.h"

namespace recforge {
namespace fs = std::filesystem;
namespace {

class SplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("recforge-split-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A dataset from a seq log: user then items, one user per line.
  Dataset from_seq(std::string_view text) {
    std::ofstream(root_ / "log.txt") << text;
    PrepareOptions options;
    options.format = "seq";
    prepare_dataset({root_ / "log.txt"}, options, root_ / "data");
    return Dataset::open(root_ / "data");
  }

  fs::path root_;
};

std::vector<int32_t> to_vector(std::span<const int32_t> items) {
  return std::vector<int32_t>(items.begin(), items.end());
}

// Items are numbered by first appearance: in "a 0 1 2 3 4", item name k gets id k.
constexpr const char* kLog = "one 0\ntwo 0 1\nthree 0 1 2\nfive 0 1 2 3 4\n";

TEST_F(SplitTest, LastItemIsTestAndSecondToLastIsValid) {
  Dataset data = from_seq(kLog);
  LeaveOneOutSplit split(data);
  int32_t five = data.find_user("five").value();
  EXPECT_EQ(to_vector(split.train_items(five)), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(split.valid_target(five), 3);
  EXPECT_EQ(split.test_target(five), 4);
  EXPECT_EQ(split.target(five, Split::kTest), 4);
  int32_t three = data.find_user("three").value();
  EXPECT_EQ(to_vector(split.train_items(three)), (std::vector<int32_t>{0}));
  EXPECT_EQ(split.valid_target(three), 1);
  EXPECT_EQ(split.test_target(three), 2);
}

TEST_F(SplitTest, ShortUsersTrainOnEverythingAndAreNotEvaluated) {
  Dataset data = from_seq(kLog);
  LeaveOneOutSplit split(data);
  int32_t two = data.find_user("two").value();
  EXPECT_EQ(to_vector(split.train_items(two)), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(split.valid_target(two), -1);
  EXPECT_EQ(split.test_target(two), -1);
  EXPECT_EQ(split.valid_target(data.find_user("one").value()), -1);
  std::vector<int32_t> evaluated = {data.find_user("three").value(),
                                    data.find_user("five").value()};
  EXPECT_EQ(split.evaluation_users(Split::kValid), evaluated);
  EXPECT_EQ(split.evaluation_users(Split::kTest), evaluated);
}

TEST_F(SplitTest, TestHistoryAddsTheValidItem) {
  Dataset data = from_seq(kLog);
  LeaveOneOutSplit split(data);
  int32_t five = data.find_user("five").value();
  EXPECT_EQ(to_vector(split.history(five, Split::kValid)), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(to_vector(split.history(five, Split::kTest)), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST_F(SplitTest, TrainCountsIgnoreValidAndTestItems) {
  // Item 9 occurs only as a test target, item 8 only as a valid target.
  Dataset data = from_seq("a 1 2 8 9\nb 1 8 9\nc 2 1\n");
  LeaveOneOutSplit split(data);
  std::vector<int64_t> counts = split.train_item_counts();
  ASSERT_EQ(counts.size(), 4u);
  EXPECT_EQ(counts[data.find_item("1").value()], 3);
  EXPECT_EQ(counts[data.find_item("2").value()], 2);
  EXPECT_EQ(counts[data.find_item("8").value()], 0);
  EXPECT_EQ(counts[data.find_item("9").value()], 0);
}

// On a varied synthetic log: for every user the training part is a prefix that ends before the
// valid position, the valid history ends before the valid position and the test history before
// the test position, so no target position can leak into what the model trains on or sees.
TEST_F(SplitTest, NoTargetPositionIsEverInTheTrainingPart) {
  SynthOptions synth;
  synth.users = 400;
  synth.items = 150;
  synth.min_length = 1;
  synth.max_length = 12;
  write_synthetic_log(synth, root_ / "log.csv");
  PrepareOptions options;
  options.header = true;
  prepare_dataset({root_ / "log.csv"}, options, root_ / "data");
  Dataset data = Dataset::open(root_ / "data");
  LeaveOneOutSplit split(data);
  std::vector<int64_t> recount(data.num_items(), 0);
  int evaluated = 0;
  for (int32_t u = 0; u < data.num_users(); ++u) {
    std::span<const int32_t> items = data.items(u);
    std::span<const int32_t> train = split.train_items(u);
    ASSERT_EQ(train.data(), items.data());
    for (int32_t item : train) ++recount[item];
    if (items.size() < 3) {
      EXPECT_EQ(train.size(), items.size());
      EXPECT_EQ(split.valid_target(u), -1);
      continue;
    }
    ++evaluated;
    const int32_t* valid_position = &items[items.size() - 2];
    const int32_t* test_position = &items[items.size() - 1];
    EXPECT_LE(train.data() + train.size(), valid_position);
    EXPECT_EQ(split.valid_target(u), *valid_position);
    EXPECT_EQ(split.test_target(u), *test_position);
    std::span<const int32_t> valid_history = split.history(u, Split::kValid);
    std::span<const int32_t> test_history = split.history(u, Split::kTest);
    EXPECT_LE(valid_history.data() + valid_history.size(), valid_position);
    EXPECT_LE(test_history.data() + test_history.size(), test_position);
    EXPECT_EQ(test_history.size(), train.size() + 1);
  }
  EXPECT_EQ(split.train_item_counts(), recount);
  EXPECT_EQ(static_cast<int>(split.evaluation_users(Split::kTest).size()), evaluated);
  EXPECT_GT(evaluated, 0);
  EXPECT_LT(evaluated, data.num_users());
}

}  // namespace
}  // namespace recforge
