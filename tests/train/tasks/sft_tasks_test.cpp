// SFT task examples: the exact token layout of each template on a hand-made rated log, the answer
// as the only target in a packed batch, the per-user sample of training events, and that no prompt
// ever shows an event from the target's second or later (hand-made ties, a synthetic log full of
// ties, and MovieLens-100K when shared/ has it).
#include "train/tasks/sft_tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include "kernels/check.h"
#include "kernels/cross_entropy.h"
#include "model/vocabulary.h"
#include "tests/train/data/rated_log.h"

namespace recforge {
namespace {

using Tokens = std::vector<int32_t>;
constexpr int32_t I = kIgnoreIndex;

// User a rates items 10..19 at one event per second from 100 on, except that 11 and 12 share
// second 200. Items are numbered by first appearance, so item "1k" is id k.
//   item    10  11  12  13  14  15  16  17  18  19
//   time   100 200 200 300 400 500 600 700 800 900
//   rating   5   2   4   1   4   3   5   4   2   5
// The chronological split holds out 18 (valid) and 19 (test).
constexpr const char* kLog =
    "a,10,100,5\na,11,200,2\na,12,200,4\na,13,300,1\na,14,400,4\n"
    "a,15,500,3\na,16,600,5\na,17,700,4\na,18,800,2\na,19,900,5\n";

class SftTasksTest : public RatedLogTest {
 protected:
  void SetUp() override {
    RatedLogTest::SetUp();
    data_.emplace(rated(kLog));
    split_.emplace(EventSplit::chronological(*data_, {}));
  }

  // The token of item name `name` (10 .. 19).
  int32_t t(int name) const { return item_token(*data_->find_item(std::to_string(name))); }

  std::optional<Dataset> data_;
  std::optional<EventSplit> split_;
};

SftOptions with_max_len(int max_len) {
  SftOptions options;
  options.max_len = max_len;
  return options;
}

TEST_F(SftTasksTest, NextItemTrainsOnEveryEventWithAnEarlierSecond) {
  std::vector<SftExample> examples =
      build_next_item_examples(*split_, SplitPart::kTrain, with_max_len(50));
  // Event 0 has no history; events 1 and 2 (second 200) both see only item 10.
  ASSERT_EQ(examples.size(), 7u);
  EXPECT_EQ(examples[0].prompt, (Tokens{kTaskNextItemToken, t(10)}));
  EXPECT_EQ(examples[0].answer, t(11));
  EXPECT_EQ(examples[0].label, static_cast<float>(token_item(t(11))));
  EXPECT_EQ(examples[0].event, 1);
  EXPECT_EQ(examples[1].prompt, (Tokens{kTaskNextItemToken, t(10)}));
  EXPECT_EQ(examples[1].answer, t(12));
  EXPECT_EQ(examples[2].prompt, (Tokens{kTaskNextItemToken, t(10), t(11), t(12)}));
  EXPECT_EQ(examples[2].answer, t(13));
  EXPECT_EQ(examples[6].prompt,
            (Tokens{kTaskNextItemToken, t(10), t(11), t(12), t(13), t(14), t(15), t(16)}));
  EXPECT_EQ(examples[6].answer, t(17));
  EXPECT_EQ(examples[6].event, 7);
}

TEST_F(SftTasksTest, NextItemHeldOutTargetsSeeEveryEarlierEvent) {
  std::vector<SftExample> valid =
      build_next_item_examples(*split_, SplitPart::kValid, with_max_len(50));
  std::vector<SftExample> test =
      build_next_item_examples(*split_, SplitPart::kTest, with_max_len(50));
  ASSERT_EQ(valid.size(), 1u);
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(valid[0].prompt,
            (Tokens{kTaskNextItemToken, t(10), t(11), t(12), t(13), t(14), t(15), t(16), t(17)}));
  EXPECT_EQ(valid[0].answer, t(18));
  EXPECT_EQ(test[0].prompt, (Tokens{kTaskNextItemToken, t(10), t(11), t(12), t(13), t(14), t(15),
                                    t(16), t(17), t(18)}));
  EXPECT_EQ(test[0].answer, t(19));
}

TEST_F(SftTasksTest, NextItemKeepsTheMostRecentItemsThatFit) {
  EXPECT_EQ(build_next_item_examples(*split_, SplitPart::kTest, with_max_len(4))[0].prompt,
            (Tokens{kTaskNextItemToken, t(16), t(17), t(18)}));
  SftOptions options = with_max_len(50);
  options.max_history = 2;
  EXPECT_EQ(build_next_item_examples(*split_, SplitPart::kTest, options)[0].prompt,
            (Tokens{kTaskNextItemToken, t(17), t(18)}));
}

TEST_F(SftTasksTest, PreferenceListsLikedThenDislikedOldestFirst) {
  std::vector<SftExample> test =
      build_preference_examples(*split_, SplitPart::kTest, with_max_len(50));
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(test[0].prompt, (Tokens{kTaskPreferenceToken, t(10), t(12), t(14), t(16), t(17),
                                    kSepToken, t(11), t(13), t(15), t(18), kSepToken, t(19)}));
  EXPECT_EQ(test[0].answer, kYesToken);
  EXPECT_EQ(test[0].label, 1.0f);
  std::vector<SftExample> valid =
      build_preference_examples(*split_, SplitPart::kValid, with_max_len(50));
  ASSERT_EQ(valid.size(), 1u);
  EXPECT_EQ(valid[0].prompt, (Tokens{kTaskPreferenceToken, t(10), t(12), t(14), t(16), t(17),
                                     kSepToken, t(11), t(13), t(15), kSepToken, t(18)}));
  EXPECT_EQ(valid[0].answer, kNoToken);
  EXPECT_EQ(valid[0].label, 0.0f);
}

TEST_F(SftTasksTest, PreferenceCapsEachSideAtItsMostRecentItems) {
  SftOptions options = with_max_len(50);
  options.max_per_side = 2;
  EXPECT_EQ(
      build_preference_examples(*split_, SplitPart::kTest, options)[0].prompt,
      (Tokens{kTaskPreferenceToken, t(16), t(17), kSepToken, t(15), t(18), kSepToken, t(19)}));
}

TEST_F(SftTasksTest, PreferenceStopsAtMaxLen) {
  std::vector<SftExample> test =
      build_preference_examples(*split_, SplitPart::kTest, with_max_len(7));
  EXPECT_EQ(test[0].prompt,
            (Tokens{kTaskPreferenceToken, t(16), t(17), kSepToken, t(18), kSepToken, t(19)}));
}

TEST_F(SftTasksTest, PreferenceThresholdDecidesSidesAndLabels) {
  SftOptions options = with_max_len(50);
  options.like_threshold = 5.0f;
  std::vector<SftExample> test = build_preference_examples(*split_, SplitPart::kTest, options);
  EXPECT_EQ(test[0].prompt, (Tokens{kTaskPreferenceToken, t(10), t(16), kSepToken, t(11), t(12),
                                    t(13), t(14), t(15), t(17), t(18), kSepToken, t(19)}));
  EXPECT_EQ(test[0].answer, kYesToken);
  // Event 7 (item 17, rated 4) is liked at the default threshold and disliked at 5.
  std::vector<SftExample> train = build_preference_examples(*split_, SplitPart::kTrain, options);
  ASSERT_EQ(train.back().event, 7);
  EXPECT_EQ(train.back().answer, kNoToken);
  EXPECT_EQ(build_preference_examples(*split_, SplitPart::kTrain, with_max_len(50)).back().answer,
            kYesToken);
}

TEST_F(SftTasksTest, RatingInterleavesItemsWithTheirRatings) {
  std::vector<SftExample> test = build_rating_examples(*split_, SplitPart::kTest, with_max_len(9));
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(test[0].prompt, (Tokens{kTaskRatingToken, t(16), rating_token(5), t(17),
                                    rating_token(4), t(18), rating_token(2), kSepToken, t(19)}));
  EXPECT_EQ(test[0].answer, rating_token(5));
  EXPECT_EQ(test[0].label, 5.0f);
  std::vector<SftExample> train =
      build_rating_examples(*split_, SplitPart::kTrain, with_max_len(9));
  EXPECT_EQ(train[0].prompt, (Tokens{kTaskRatingToken, t(10), rating_token(5), kSepToken, t(11)}));
  EXPECT_EQ(train[0].answer, rating_token(2));
  EXPECT_EQ(train[0].label, 2.0f);
}

TEST_F(SftTasksTest, RatingHistoryRespectsMaxHistory) {
  SftOptions options = with_max_len(50);
  options.max_history = 1;
  EXPECT_EQ(build_rating_examples(*split_, SplitPart::kTest, options)[0].prompt,
            (Tokens{kTaskRatingToken, t(18), rating_token(2), kSepToken, t(19)}));
}

TEST_F(SftTasksTest, BuildSftExamplesDispatchesOnTheTask) {
  SftOptions options = with_max_len(50);
  for (SftTask task : {SftTask::kNextItem, SftTask::kPreference, SftTask::kRating}) {
    EXPECT_EQ(parse_choice<SftTask>(name_of(task)), task);
    EXPECT_EQ(build_sft_examples(task, *split_, SplitPart::kTest, options)[0].prompt[0],
              kFirstTaskToken + static_cast<int32_t>(task));
  }
  EXPECT_THROW(parse_choice<SftTask>("ctr"), Error);
}

TEST_F(SftTasksTest, TooShortMaxLenIsRejected) {
  EXPECT_THROW(build_next_item_examples(*split_, SplitPart::kTest, with_max_len(1)), Error);
  EXPECT_THROW(build_preference_examples(*split_, SplitPart::kTest, with_max_len(4)), Error);
  EXPECT_THROW(build_rating_examples(*split_, SplitPart::kTest, with_max_len(4)), Error);
}

TEST_F(SftTasksTest, AppendedExampleTargetsOnlyItsAnswerAtTheLastPosition) {
  std::vector<SftExample> test = build_rating_examples(*split_, SplitPart::kTest, with_max_len(9));
  std::vector<SftExample> train =
      build_next_item_examples(*split_, SplitPart::kTrain, with_max_len(9));
  PackedBatch batch = empty_batch();
  append_example(batch, test[0], 12);
  append_example(batch, train[0], 12);
  EXPECT_EQ(batch.offsets, (std::vector<int32_t>{0, 9, 11}));
  Tokens tokens = test[0].prompt;
  tokens.insert(tokens.end(), train[0].prompt.begin(), train[0].prompt.end());
  EXPECT_EQ(batch.tokens, tokens);
  EXPECT_EQ(batch.positions, (Tokens{3, 4, 5, 6, 7, 8, 9, 10, 11, 10, 11}));
  EXPECT_EQ(batch.targets, (Tokens{I, I, I, I, I, I, I, I, rating_token(5), I, t(11)}));
}

TEST_F(SftTasksTest, AppendExampleRejectsLongPromptsAndBatchesWithoutTargets) {
  std::vector<SftExample> test =
      build_next_item_examples(*split_, SplitPart::kTest, with_max_len(50));
  PackedBatch batch = empty_batch();
  EXPECT_THROW(append_example(batch, test[0], 9), Error);
  batch.add_recent_sequence(Tokens{t(10)}, 9);
  EXPECT_THROW(append_example(batch, test[0], 10), Error);
}

TEST_F(SftTasksTest, TrainingEventsArePerUserSeededSamples) {
  std::ostringstream csv;
  for (int i = 0; i < 40; ++i) csv << "b," << i << "," << i << "," << 1 + i % 5 << "\n";
  Dataset data = rated(csv.str());
  EventSplit split = EventSplit::chronological(data, {});
  SftOptions options = with_max_len(50);
  std::vector<SftExample> all = build_next_item_examples(split, SplitPart::kTrain, options);
  ASSERT_EQ(all.size(), 31u);  // 32 training events, the first without history
  options.max_train_examples_per_user = 5;
  std::vector<int32_t> first_events;
  bool seeds_differ = false;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    options.seed = seed;
    std::vector<SftExample> sample = build_next_item_examples(split, SplitPart::kTrain, options);
    ASSERT_EQ(sample.size(), 5u);
    std::vector<int32_t> events;
    for (const SftExample& example : sample) {
      events.push_back(example.event);
      EXPECT_EQ(example.prompt, all[example.event - 1].prompt);
    }
    EXPECT_TRUE(std::is_sorted(events.begin(), events.end()));
    EXPECT_EQ(std::adjacent_find(events.begin(), events.end()), events.end());
    EXPECT_EQ(build_next_item_examples(split, SplitPart::kTrain, options).back().event,
              events.back());
    if (seed == 1) first_events = events;
    seeds_differ |= events != first_events;
  }
  EXPECT_TRUE(seeds_differ);
  EXPECT_EQ(build_next_item_examples(split, SplitPart::kTest, options).size(), 4u);
}

TEST_F(SftTasksTest, RatedTasksNeedRatingsInOneToFive) {
  PrepareOptions options;
  options.format = "seq";
  Dataset unrated = prepare("a 0 1 2 3\n", options);
  EventSplit split = EventSplit::chronological(unrated, {});
  EXPECT_EQ(build_next_item_examples(split, SplitPart::kTest, with_max_len(50)).size(), 1u);
  EXPECT_THROW(build_preference_examples(split, SplitPart::kTest, with_max_len(50)), Error);
  EXPECT_THROW(build_rating_examples(split, SplitPart::kTest, with_max_len(50)), Error);
  Dataset out_of_range = rated("a,0,1,3\na,1,2,7\na,2,3,4\n");
  EXPECT_THROW(build_rating_examples(EventSplit::chronological(out_of_range, {}), SplitPart::kTest,
                                     with_max_len(50)),
               Error);
}

// For every example of `part`: the target is an event of the part; every item the prompt shows
// (the target closing a preference or rating prompt aside) happened strictly before the target's
// second, and for training examples inside the training part. Items must be unique per user.
void expect_no_future_event(const EventSplit& split, SftTask task, SplitPart part,
                            const std::vector<SftExample>& examples) {
  const Dataset& data = split.dataset();
  int64_t checked = 0;
  int32_t user = -1;
  std::map<int32_t, int64_t> event_of;  // user's item -> its event
  for (const SftExample& example : examples) {
    std::span<const int32_t> items = data.items(example.user);
    std::span<const int64_t> times = data.timestamps(example.user);
    if (example.user != user) {
      user = example.user;
      event_of.clear();
      for (size_t j = 0; j < items.size(); ++j) event_of[items[j]] = static_cast<int64_t>(j);
      ASSERT_EQ(event_of.size(), items.size()) << "items must be unique per user";
    }
    const EventRange range = split.range(example.user, part);
    ASSERT_GE(example.event, range.begin);
    ASSERT_LT(example.event, range.end);
    const int64_t target_time = times[example.event];
    size_t shown = example.prompt.size();
    if (task != SftTask::kNextItem) {
      ASSERT_EQ(example.prompt.back(), item_token(items[example.event]));
      --shown;
    }
    for (size_t p = 0; p < shown; ++p) {
      if (!is_item_token(example.prompt[p])) continue;
      const int64_t event = event_of.at(token_item(example.prompt[p]));
      ASSERT_LT(times[event], target_time) << "user " << example.user << " event " << example.event;
      if (part == SplitPart::kTrain) ASSERT_LT(event, split.range(example.user, part).end);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST_F(SftTasksTest, NoPromptShowsAnEventOfTheTargetsSecondOrLater) {
  // 60 users, 25 distinct items each from 300, timestamps drawn from 6 seconds: ties everywhere.
  std::mt19937 rng(7);
  std::ostringstream csv;
  for (int u = 0; u < 60; ++u) {
    std::vector<int> items(300);
    std::iota(items.begin(), items.end(), 0);
    std::shuffle(items.begin(), items.end(), rng);
    std::vector<int> times(25);
    for (int& time : times) time = static_cast<int>(rng() % 6);
    std::sort(times.begin(), times.end());
    for (int i = 0; i < 25; ++i) {
      csv << "u" << u << "," << items[i] << "," << times[i] << "," << 1 + rng() % 5 << "\n";
    }
  }
  Dataset data = rated(csv.str());
  EventSplit split = EventSplit::chronological(data, {0.2, 0.2});
  for (SftTask task : {SftTask::kNextItem, SftTask::kPreference, SftTask::kRating}) {
    for (SplitPart part : {SplitPart::kTrain, SplitPart::kValid, SplitPart::kTest}) {
      SCOPED_TRACE(name_of(task) + " " + split_part_name(part));
      expect_no_future_event(split, task, part,
                             build_sft_examples(task, split, part, with_max_len(12)));
    }
  }
}

// MovieLens-100K's u.data (user, item, rating, time; tab-separated), where shared/ has it.
std::filesystem::path movielens_100k() {
  const char* path = std::getenv("RECFORGE_ML100K");
  return path ? path : RECFORGE_ML100K_DATA;
}

using MovieLens100K = RatedLogTest;

TEST_F(MovieLens100K, ExamplesNeverSeeTheFuture) {
  if (!std::filesystem::exists(movielens_100k())) {
    GTEST_SKIP() << movielens_100k() << " not found";
  }
  PrepareOptions prepare_options;
  prepare_options.format = "tsv";
  prepare_options.user_col = 0;
  prepare_options.item_col = 1;
  prepare_options.rating_col = 2;
  prepare_options.time_col = 3;
  prepare_dataset({movielens_100k()}, prepare_options, root_ / "ml-100k");
  Dataset data = Dataset::open(root_ / "ml-100k");
  ASSERT_EQ(data.num_interactions(), 100000);
  ASSERT_EQ(data.num_users(), 943);
  EventSplit split = EventSplit::chronological(data, {});
  std::cout << "ML-100K chronological split: train " << split.count(SplitPart::kTrain) << ", valid "
            << split.count(SplitPart::kValid) << ", test " << split.count(SplitPart::kTest)
            << " events\n";
  SftOptions options = with_max_len(50);
  for (SftTask task : {SftTask::kNextItem, SftTask::kPreference, SftTask::kRating}) {
    for (SplitPart part : {SplitPart::kTrain, SplitPart::kValid, SplitPart::kTest}) {
      SCOPED_TRACE(name_of(task) + " " + split_part_name(part));
      std::vector<SftExample> examples = build_sft_examples(task, split, part, options);
      double positives = 0.0;
      for (const SftExample& example : examples) positives += example.label;
      std::cout << "ML-100K " << name_of(task) << " " << split_part_name(part) << ": "
                << examples.size() << " examples";
      if (task == SftTask::kPreference) std::cout << " (" << positives << " YES)";
      std::cout << "\n";
      EXPECT_LE(static_cast<int64_t>(examples.size()), split.count(part));
      expect_no_future_event(split, task, part, examples);
    }
  }
}

}  // namespace
}  // namespace recforge
