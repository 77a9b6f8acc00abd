// DPO preference pairs from a leave-one-out split: prompts and chosen items follow the split,
// rejected items are never any of the user's items, draws are fixed by the seed, the rating
// variant picks by its thresholds, and impossible requests fail with a message naming the user.
#include "train/tasks/preference_pairs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "kernels/check.h"

namespace recforge {
namespace fs = std::filesystem;
namespace {

class PreferencePairsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("recforge-pairs-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A dataset from a seq log: user then items, one user per line.
  Dataset from_seq(const std::string& text) {
    std::ofstream(root_ / "log.txt") << text;
    PrepareOptions options;
    options.format = "seq";
    prepare_dataset({root_ / "log.txt"}, options, root_ / "data");
    return Dataset::open(root_ / "data");
  }

  // A dataset from `user,item,time,rating` lines.
  Dataset from_ratings(const std::string& text) {
    std::ofstream(root_ / "log.csv") << text;
    PrepareOptions options;
    options.rating_col = 3;
    prepare_dataset({root_ / "log.csv"}, options, root_ / "data");
    return Dataset::open(root_ / "data");
  }

  fs::path root_;
};

// 300 users of 3 to 30 distinct items from a catalog of 60, so a rejected item drawn from the
// whole catalog would often hit one of the user's items.
std::string random_seq_log(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ostringstream log;
  for (int u = 0; u < 300; ++u) {
    std::vector<int> catalog(60);
    for (int i = 0; i < 60; ++i) catalog[i] = i;
    std::shuffle(catalog.begin(), catalog.end(), rng);
    const int length = 3 + static_cast<int>(rng() % 28);
    log << "u" << u;
    for (int i = 0; i < length; ++i) log << " i" << catalog[i];
    log << "\n";
  }
  return log.str();
}

std::set<int32_t> all_items(const Dataset& data, int32_t user) {
  std::span<const int32_t> items = data.items(user);
  return std::set<int32_t>(items.begin(), items.end());
}

// Checks the pairs' shape and that every rejected item is distinct, not chosen and outside the
// user's whole sequence (train, valid and test).
void expect_rejected_never_interacted(const Dataset& data, const std::vector<PreferencePair>& pairs,
                                      int K) {
  for (const PreferencePair& pair : pairs) {
    ASSERT_EQ(std::ssize(pair.candidates), K);
    const std::set<int32_t> user_items = all_items(data, pair.user);
    const std::set<int32_t> distinct(pair.candidates.begin(), pair.candidates.end());
    EXPECT_EQ(std::ssize(distinct), K) << "user " << pair.user << ": repeated candidate";
    for (int k = 1; k < K; ++k) {
      EXPECT_EQ(user_items.count(pair.candidates[k]), 0u)
          << "user " << pair.user << " rejected item " << pair.candidates[k] << " is theirs";
      EXPECT_GE(pair.candidates[k], 0);
      EXPECT_LT(pair.candidates[k], data.num_items());
    }
  }
}

TEST_F(PreferencePairsTest, RejectedItemsAreNeverInTheUsersSequence) {
  Dataset data = from_seq(random_seq_log(1));
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 5;
  options.seed = 7;
  expect_rejected_never_interacted(data, sequence_training_pairs(split, options), 5);
  expect_rejected_never_interacted(data, sequence_eval_pairs(split, Split::kValid, options), 5);
  expect_rejected_never_interacted(data, sequence_eval_pairs(split, Split::kTest, options), 5);
}

// Each training position t ≥ 1 of each user, in order: chosen = train[t], prompt = the most recent
// max_len items before it.
TEST_F(PreferencePairsTest, TrainingPairsFollowEveryTrainingPosition) {
  Dataset data = from_seq(random_seq_log(2));
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.max_len = 4;
  std::vector<PreferencePair> pairs = sequence_training_pairs(split, options);
  size_t next = 0;
  for (int32_t u = 0; u < data.num_users(); ++u) {
    std::span<const int32_t> train = split.train_items(u);
    for (size_t t = 1; t < train.size(); ++t, ++next) {
      ASSERT_LT(next, pairs.size());
      const PreferencePair& pair = pairs[next];
      EXPECT_EQ(pair.user, u);
      EXPECT_EQ(pair.candidates[0], train[t]);
      const size_t begin = t > 4 ? t - 4 : 0;
      EXPECT_TRUE(std::equal(pair.prompt.begin(), pair.prompt.end(), train.begin() + begin,
                             train.begin() + t) &&
                  pair.prompt.size() == t - begin)
          << "user " << u << " position " << t;
    }
  }
  EXPECT_EQ(next, pairs.size());
}

TEST_F(PreferencePairsTest, EvalPairsUseTheSplitTargetsAndHistories) {
  Dataset data = from_seq(random_seq_log(3));
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.max_len = 6;
  for (Split which : {Split::kValid, Split::kTest}) {
    std::vector<PreferencePair> pairs = sequence_eval_pairs(split, which, options);
    std::vector<int32_t> users = split.evaluation_users(which);
    ASSERT_EQ(pairs.size(), users.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      EXPECT_EQ(pairs[i].user, users[i]);
      EXPECT_EQ(pairs[i].candidates[0], split.target(users[i], which));
      std::span<const int32_t> history = split.history(users[i], which);
      std::span<const int32_t> recent = history.last(std::min<size_t>(history.size(), 6));
      EXPECT_TRUE(
          std::equal(pairs[i].prompt.begin(), pairs[i].prompt.end(), recent.begin(), recent.end()));
    }
  }
}

TEST_F(PreferencePairsTest, SameSeedGivesSamePairsAndAnotherSeedDiffers) {
  Dataset data = from_seq(random_seq_log(4));
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 3;
  options.seed = 11;
  std::vector<int32_t> first = candidate_matrix(sequence_training_pairs(split, options));
  std::vector<int32_t> again = candidate_matrix(sequence_training_pairs(split, options));
  EXPECT_EQ(first, again);
  options.seed = 12;
  std::vector<int32_t> other = candidate_matrix(sequence_training_pairs(split, options));
  ASSERT_EQ(other.size(), first.size());
  int64_t differing = 0;
  for (size_t i = 0; i < first.size(); ++i) differing += first[i] != other[i];
  EXPECT_GT(differing, std::ssize(first) / 3);  // two of three candidates are random
}

// A user who touches all but K − 1 items: every pair must reject exactly the untouched ones.
TEST_F(PreferencePairsTest, DrawsCoverExactlyTheUntouchedItems) {
  std::ostringstream log;
  log << "low";  // items i0..i39 are ids 0..39, and neither of these users touches them all
  for (int i = 0; i < 20; ++i) log << " i" << i;
  log << "\nhigh";
  for (int i = 20; i < 40; ++i) log << " i" << i;
  log << "\nme";
  const std::set<int> untouched{0, 7, 8, 21, 39};
  for (int i = 0; i < 40; ++i) {
    if (!untouched.count(i)) log << " i" << i;
  }
  Dataset data = from_seq(log.str() + "\n");
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 1 + static_cast<int>(untouched.size());
  const int32_t me = data.find_user("me").value();
  for (const PreferencePair& pair : sequence_training_pairs(split, options)) {
    if (pair.user != me) continue;
    std::set<int> rejected(pair.candidates.begin() + 1, pair.candidates.end());
    EXPECT_EQ(rejected, untouched);
  }
}

TEST_F(PreferencePairsTest, TooManyCandidatesThrowNamingTheUser) {
  Dataset data = from_seq("small 0 1 2 3\nbig 0 1 2 3 4 5 6 7\n");
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 2;  // "big" touches all 8 items: nothing to reject
  try {
    sequence_training_pairs(split, options);
    ADD_FAILURE() << "a user without never-interacted items was accepted";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("\"big\""), std::string::npos);
  }
  options.num_candidates = 1;
  EXPECT_THROW(sequence_eval_pairs(split, Split::kTest, options), Error);
}

// ann's training part (positions 0..5) holds the ratings; the last two are valid and test.
constexpr const char* kRatingLog =
    "ann,a,1,5\nann,b,2,1\nann,c,3,4\nann,d,4,2\nann,e,5,3\nann,f,6,5\nann,g,7,1\nann,h,8,1\n"
    "bob,a,1,1\nbob,b,2,5\nbob,c,3,5\nbob,i,4,4\nbob,j,5,4\nbob,k,6,2\nbob,l,7,1\n";

TEST_F(PreferencePairsTest, RatingPairsPickChosenAndRejectedByThresholds) {
  Dataset data = from_ratings(kRatingLog);
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;  // chosen ≥ 4, rejected ≤ 2
  options.num_candidates = 3;
  std::vector<PreferencePair> pairs = rating_pairs(split, options);
  const int32_t ann = data.find_user("ann").value();
  auto item = [&](const char* name) { return data.find_item(name).value(); };
  std::vector<int32_t> ann_chosen;
  for (const PreferencePair& pair : pairs) {
    if (pair.user != ann) continue;
    ann_chosen.push_back(pair.candidates[0]);
    // ann rated b and d ≤ 2 in training (g, h are valid and test): exactly enough.
    EXPECT_EQ(std::set<int32_t>(pair.candidates.begin() + 1, pair.candidates.end()),
              (std::set<int32_t>{item("b"), item("d")}));
  }
  // a (position 0) has no prompt; c and f (rated 4 and 5) qualify; e (rated 3) does not.
  EXPECT_EQ(ann_chosen, (std::vector<int32_t>{item("c"), item("f")}));
}

TEST_F(PreferencePairsTest, RatingPairsFallBackToNeverInteractedItems) {
  Dataset data = from_ratings(kRatingLog);
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 4;
  const int32_t bob = data.find_user("bob").value();
  const std::set<int32_t> bob_items = all_items(data, bob);
  int bob_pairs = 0;
  for (const PreferencePair& pair : rating_pairs(split, options)) {
    if (pair.user != bob) continue;
    ++bob_pairs;
    // bob's only low-rated training item is a; the other two are items he never touched.
    EXPECT_EQ(pair.candidates[1], data.find_item("a").value());
    for (int k = 2; k < 4; ++k) EXPECT_EQ(bob_items.count(pair.candidates[k]), 0u);
  }
  EXPECT_EQ(bob_pairs, 4);  // b, c, i, j
}

// cat rated x low, then high again later (a repeated event): x is chosen there, and its low
// rating must not make it one of its own rejected items.
TEST_F(PreferencePairsTest, RatingPairsNeverRejectTheChosenItem) {
  Dataset data = from_ratings(
      "dog,a,1,3\ndog,b,2,3\ndog,c,3,3\n"
      "cat,x,1,1\ncat,z,2,2\ncat,y,3,5\ncat,x,4,5\ncat,w,5,1\ncat,v,6,1\n");
  LeaveOneOutSplit split(data);
  PreferencePairOptions options;
  options.num_candidates = 3;
  auto item = [&](const char* name) { return data.find_item(name).value(); };
  const std::set<int32_t> untouched{item("a"), item("b"), item("c")};
  std::vector<std::vector<int32_t>> cat_candidates;
  for (const PreferencePair& pair : rating_pairs(split, options)) {
    if (pair.user == data.find_user("cat").value()) cat_candidates.push_back(pair.candidates);
  }
  ASSERT_EQ(cat_candidates.size(), 2u);
  EXPECT_EQ(cat_candidates[0][0], item("y"));
  EXPECT_EQ(std::set<int32_t>(cat_candidates[0].begin() + 1, cat_candidates[0].end()),
            (std::set<int32_t>{item("x"), item("z")}));
  EXPECT_EQ(cat_candidates[1][0], item("x"));
  EXPECT_EQ(cat_candidates[1][1], item("z"));
  EXPECT_EQ(untouched.count(cat_candidates[1][2]), 1u);
}

TEST_F(PreferencePairsTest, RatingPairsNeedRatingsAndOrderedThresholds) {
  Dataset without = from_seq("x 0 1 2 3\n");
  EXPECT_THROW(rating_pairs(LeaveOneOutSplit(without), {}), Error);
  fs::remove_all(root_ / "data");
  Dataset data = from_ratings(kRatingLog);
  PreferencePairOptions options;
  options.chosen_min_rating = 3;
  options.rejected_max_rating = 3;
  try {
    rating_pairs(LeaveOneOutSplit(data), options);
    ADD_FAILURE() << "equal thresholds were accepted";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
  }
}

TEST(CandidateMatrix, RowsAreThePairsCandidates) {
  std::vector<PreferencePair> pairs(2);
  pairs[0].candidates = {3, 1, 2};
  pairs[1].candidates = {0, 4, 5};
  EXPECT_EQ(candidate_matrix(pairs), (std::vector<int32_t>{3, 1, 2, 0, 4, 5}));
  pairs[1].candidates.pop_back();
  EXPECT_THROW(candidate_matrix(pairs), Error);
}

}  // namespace
}  // namespace recforge
