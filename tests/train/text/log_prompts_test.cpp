// Prompts rendered from logs: histories hold only events before the target, candidates are the
// target and items the user never saw, labels follow the rating threshold, and the same dataset
// renders the same prompts twice.
#include "train/text/log_prompts.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/train/data/rated_log.h"

namespace recforge {
namespace {

class LogPromptsTest : public RatedLogTest {
 protected:
  // Users u and v with 10 events each (items i0..i9, one second apart, ratings cycling 1..5) and
  // items j0..j29 that only w saw.
  Dataset log() {
    std::string csv;
    for (const char* user : {"u", "v"}) {
      for (int i = 0; i < 10; ++i) {
        csv += std::string(user) + ",i" + std::to_string(i) + "," + std::to_string(100 + i) + "," +
               std::to_string(1 + i % 5) + "\n";
      }
    }
    for (int j = 0; j < 30; ++j)
      csv += "w,j" + std::to_string(j) + "," + std::to_string(j) + ",3\n";
    return rated(csv);
  }
  static std::vector<std::string> titles_of(const Dataset& data) {
    std::vector<std::string> titles;
    for (int32_t item = 0; item < data.num_items(); ++item) {
      titles.push_back("T-" + data.item_name(item));
    }
    return titles;
  }
};

TEST_F(LogPromptsTest, CandidatesAreTheTargetAndUnseenItemsAfterAnEarlierHistory) {
  const Dataset data = log();
  const EventSplit split = EventSplit::leave_one_out(data);
  LogPromptOptions options;
  options.candidates = 8;
  options.history = 4;
  const auto examples = candidate_prompts(split, titles_of(data), options);
  ASSERT_EQ(examples.size(), 3u);  // one test event per user
  const CandidateExample& u = examples[0];
  EXPECT_EQ(u.history, (std::vector<std::string>{"T-i5", "T-i6", "T-i7", "T-i8"}));
  ASSERT_EQ(u.candidates.size(), 8u);
  EXPECT_EQ(u.candidates[u.answer], "T-i9");
  for (int c = 0; c < 8; ++c) {
    if (c != u.answer) EXPECT_EQ(u.candidates[c].rfind("T-j", 0), 0u) << u.candidates[c];
  }
  const auto again = candidate_prompts(split, titles_of(data), options);
  EXPECT_EQ(again[0].candidates, u.candidates);
}

TEST_F(LogPromptsTest, CandidateListsHoldTheItemsThePromptsName) {
  const Dataset data = log();
  const EventSplit split = EventSplit::chronological(data, {});
  const std::vector<std::string> titles = titles_of(data);
  LogPromptOptions options;
  options.candidates = 6;
  const std::vector<CandidateList> lists = candidate_lists(split, titles, options);
  const auto examples = candidate_prompts(split, titles, options);
  ASSERT_EQ(lists.size(), examples.size());
  for (size_t i = 0; i < lists.size(); ++i) {
    const auto items = data.items(lists[i].user);
    ASSERT_LT(lists[i].history_length, static_cast<int64_t>(items.size()));
    EXPECT_EQ(examples[i].history.back(), titles[items[lists[i].history_length - 1]]);
    EXPECT_EQ(examples[i].answer, lists[i].answer);
    for (size_t c = 0; c < lists[i].items.size(); ++c) {
      EXPECT_EQ(examples[i].candidates[c], titles[lists[i].items[c]]);
    }
    EXPECT_EQ(std::count(items.begin(), items.begin() + lists[i].history_length,
                         lists[i].items[lists[i].answer]),
              0);
  }
}

TEST_F(LogPromptsTest, PreferenceSplitsTheHistoryByRatingAndLabelsTheTarget) {
  const Dataset data = log();
  const EventSplit split = EventSplit::leave_one_out(data);
  LogPromptOptions options;
  options.part = SplitPart::kValid;
  options.history = 5;
  options.per_user = 1;
  const auto examples = preference_prompts(split, titles_of(data), options);
  ASSERT_GE(examples.size(), 1u);
  // u's valid event is i8 (rating 4: a like) after i3..i7 (ratings 4, 5, 1, 2, 3).
  EXPECT_EQ(examples[0].input,
            "User Preference: \"T-i3\", \"T-i4\"\nUser Unpreference: \"T-i5\", \"T-i6\", "
            "\"T-i7\"\nWhether the user will like the target movie \"T-i8\"?");
  EXPECT_EQ(examples[0].output, "Yes.");
}

TEST_F(LogPromptsTest, TrainingTargetsComeFromTheTrainingPartOnly) {
  const Dataset data = log();
  const EventSplit split = EventSplit::leave_one_out(data);
  LogPromptOptions options;
  options.part = SplitPart::kTrain;
  options.per_user = 3;
  options.candidates = 4;
  for (const CandidateExample& e : candidate_prompts(split, titles_of(data), options)) {
    const std::string& target = e.candidates[e.answer];
    EXPECT_NE(target, "T-i8");
    EXPECT_NE(target, "T-i9");
    EXPECT_EQ(std::count(e.history.begin(), e.history.end(), target), 0);
  }
}

}  // namespace
}  // namespace recforge
