// Task metrics against hand computations: AUC (known values, ties, a brute-force pair count),
// RMSE and MAE, and the preference score and expected rating read from logits rows.
#include "train/eval/task_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/check.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

using Floats = std::vector<float>;

TEST(Auc, SeparatedClassesGiveOneOrZero) {
  EXPECT_DOUBLE_EQ(auc(Floats{0.1f, 0.2f, 0.8f, 0.9f}, Floats{0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(auc(Floats{0.1f, 0.2f, 0.8f, 0.9f}, Floats{1, 1, 0, 0}), 0.0);
}

TEST(Auc, CountsCorrectlyOrderedPairs) {
  // Positives 0.35, 0.8 against negatives 0.1, 0.4: 3 of 4 pairs are ordered.
  EXPECT_DOUBLE_EQ(auc(Floats{0.1f, 0.4f, 0.35f, 0.8f}, Floats{0, 0, 1, 1}), 0.75);
}

TEST(Auc, TiesCountOneHalf) {
  EXPECT_DOUBLE_EQ(auc(Floats{0.5f, 0.5f, 0.5f, 0.5f}, Floats{1, 0, 1, 0}), 0.5);
  // Positives 2, 3 against negatives 1, 2: pairs 1 + 1/2 + 1 + 1 of 4.
  EXPECT_DOUBLE_EQ(auc(Floats{1, 2, 2, 3}, Floats{0, 1, 0, 1}), 0.875);
}

TEST(Auc, InfiniteScoresRankAtTheEnds) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_DOUBLE_EQ(auc(Floats{-inf, 0.0f, inf, inf}, Floats{0, 1, 0, 1}), 0.625);
}

TEST(Auc, MatchesABruteForcePairCount) {
  std::mt19937 rng(3);
  Floats scores(500), labels(500);
  for (size_t i = 0; i < scores.size(); ++i) {
    scores[i] = static_cast<float>(rng() % 20);  // many ties
    labels[i] = static_cast<float>(rng() % 3 == 0);
  }
  double ordered = 0.0, pairs = 0.0;
  for (size_t p = 0; p < scores.size(); ++p) {
    for (size_t n = 0; n < scores.size(); ++n) {
      if (labels[p] != 1.0f || labels[n] != 0.0f) continue;
      pairs += 1.0;
      ordered += scores[p] > scores[n] ? 1.0 : scores[p] == scores[n] ? 0.5 : 0.0;
    }
  }
  const double value = auc(scores, labels);
  std::cout << "AUC " << value << " vs pair count " << ordered / pairs << "\n";
  EXPECT_NEAR(value, ordered / pairs, 1e-12);
}

TEST(Auc, RejectsAMissingClassBadLabelsAndNaN) {
  EXPECT_THROW(auc(Floats{0.1f, 0.2f}, Floats{1, 1}), Error);
  EXPECT_THROW(auc(Floats{0.1f, 0.2f}, Floats{0, 0}), Error);
  EXPECT_THROW(auc(Floats{0.1f, 0.2f}, Floats{0, 0.5f}), Error);
  EXPECT_THROW(auc(Floats{0.1f, std::nanf("")}, Floats{0, 1}), Error);
  EXPECT_THROW(auc(Floats{0.1f, 0.2f}, Floats{0, 1, 1}), Error);
  EXPECT_THROW(auc(Floats{}, Floats{}), Error);
}

TEST(RegressionErrors, RmseAndMaeOfKnownErrors) {
  // Errors -1, 0, -2: RMSE = sqrt(5/3), MAE = 1.
  EXPECT_NEAR(rmse(Floats{1, 2, 3}, Floats{2, 2, 5}), std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_NEAR(mae(Floats{1, 2, 3}, Floats{2, 2, 5}), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(rmse(Floats{4.5f}, Floats{4.5f}), 0.0);
  EXPECT_THROW(rmse(Floats{1}, Floats{1, 2}), Error);
  EXPECT_THROW(mae(Floats{}, Floats{}), Error);
}

// A full-vocabulary row with the given rating logits (ratings 1..5) and YES/NO logits.
Floats logits_row(const Floats& rating_logits, float yes, float no) {
  Floats row(vocabulary_size(3), -7.0f);
  row[kYesToken] = yes;
  row[kNoToken] = no;
  for (int r = 0; r < kNumRatingTokens; ++r) row[kRating1Token + r] = rating_logits[r];
  return row;
}

TEST(AnswerScores, PreferenceScoreIsYesMinusNo) {
  EXPECT_FLOAT_EQ(preference_score(logits_row(Floats(5, 0.0f), 2.5f, -1.0f).data()), 3.5f);
}

TEST(AnswerScores, ExpectedRatingWeighsRatingsByTheirSoftmax) {
  // p = (0.1, 0.2, 0.3, 0.2, 0.2): 0.1 + 0.4 + 0.9 + 0.8 + 1.0 = 3.2.
  Floats logits;
  for (double p : {0.1, 0.2, 0.3, 0.2, 0.2}) logits.push_back(static_cast<float>(std::log(p)));
  EXPECT_NEAR(expected_rating_of(logits), 3.2, 1e-6);
  EXPECT_NEAR(expected_rating(logits_row(logits, 9.0f, 9.0f).data()), 3.2, 1e-6);
  EXPECT_NEAR(expected_rating_of(Floats(5, 1.0f)), 3.0, 1e-6);
}

TEST(AnswerScores, ExpectedRatingIsStableForLargeLogits) {
  EXPECT_NEAR(expected_rating_of(Floats{0, 0, 0, 0, 1000}), 5.0, 1e-6);
  EXPECT_NEAR(expected_rating_of(Floats{2000, 1000, 1000, 1000, 1000}), 1.0, 1e-6);
  EXPECT_THROW(expected_rating_of(Floats{1, 2, 3}), Error);
}

TEST(AnswerScores, OnlyTheSpecialTokenBlockIsRead) {
  Floats row = logits_row(Floats{0, 1, 2, 3, 4}, 1.0f, 0.0f);
  Floats special(row.begin(), row.begin() + kFirstItemToken);
  EXPECT_EQ(expected_rating(special.data()), expected_rating(row.data()));
  EXPECT_EQ(preference_score(special.data()), preference_score(row.data()));
}

}  // namespace
}  // namespace recforge
