// Ranking metrics against hand-computed values.
#include "train/eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/check.h"

namespace recforge {
namespace {

RankingMetrics with_ranks(std::vector<int> ks, std::initializer_list<int64_t> ranks) {
  RankingMetrics metrics(std::move(ks));
  for (int64_t rank : ranks) metrics.add(rank);
  return metrics;
}

TEST(RankingMetrics, HitRateCountsRanksBelowK) {
  RankingMetrics metrics = with_ranks({1, 5, 10}, {0, 3, 9, 10});
  EXPECT_EQ(metrics.count(), 4);
  EXPECT_DOUBLE_EQ(metrics.hit_rate(1), 0.25);
  EXPECT_DOUBLE_EQ(metrics.hit_rate(5), 0.5);
  EXPECT_DOUBLE_EQ(metrics.hit_rate(10), 0.75);
}

TEST(RankingMetrics, NdcgDiscountsByLogOfRankPlusTwo) {
  RankingMetrics metrics = with_ranks({2, 5}, {0, 1, 3});
  // 1/log2(2) = 1, 1/log2(3) = 0.6309297535714575, 1/log2(5) = 0.43067655807339306
  EXPECT_NEAR(metrics.ndcg(2), (1.0 + 0.6309297535714575) / 3.0, 1e-12);
  EXPECT_NEAR(metrics.ndcg(5), (1.0 + 0.6309297535714575 + 0.43067655807339306) / 3.0, 1e-12);
}

TEST(RankingMetrics, MrrIsNotTruncatedAtAnyK) {
  RankingMetrics metrics = with_ranks({1}, {0, 99, 3});
  EXPECT_NEAR(metrics.mrr(), (1.0 + 0.01 + 0.25) / 3.0, 1e-12);
}

TEST(RankingMetrics, MergeEqualsAddingEveryRankToOne) {
  RankingMetrics a = with_ranks({1, 10}, {0, 4});
  RankingMetrics b = with_ranks({1, 10}, {12, 1, 0});
  a.merge(b);
  RankingMetrics all = with_ranks({1, 10}, {0, 4, 12, 1, 0});
  EXPECT_EQ(a.count(), 5);
  EXPECT_DOUBLE_EQ(a.hit_rate(1), all.hit_rate(1));
  EXPECT_DOUBLE_EQ(a.ndcg(10), all.ndcg(10));
  EXPECT_DOUBLE_EQ(a.mrr(), all.mrr());
}

TEST(RankingMetrics, MergeRejectsDifferentKs) {
  RankingMetrics a({1, 10});
  EXPECT_THROW(a.merge(RankingMetrics({1, 5})), Error);
}

TEST(RankingMetrics, AsMapNamesEveryMetricUnderThePrefix) {
  RankingMetrics metrics = with_ranks({1, 10}, {0, 2});
  std::map<std::string, double> values = metrics.as_map("valid");
  ASSERT_EQ(values.size(), 5u);
  EXPECT_DOUBLE_EQ(values.at("valid/hr@1"), 0.5);
  EXPECT_DOUBLE_EQ(values.at("valid/hr@10"), 1.0);
  EXPECT_DOUBLE_EQ(values.at("valid/ndcg@1"), 0.5);
  EXPECT_DOUBLE_EQ(values.at("valid/ndcg@10"), (1.0 + 0.5) / 2.0);  // 1/log2(4) = 0.5
  EXPECT_DOUBLE_EQ(values.at("valid/mrr"), (1.0 + 1.0 / 3.0) / 2.0);
  EXPECT_EQ(metrics.as_map("").count("mrr"), 1u);
}

TEST(RankingMetrics, MetricLooksUpByName) {
  RankingMetrics metrics = with_ranks({1, 10}, {0, 3});
  EXPECT_DOUBLE_EQ(metrics.metric("hr@1"), 0.5);
  EXPECT_DOUBLE_EQ(metrics.metric("ndcg@10"), (1.0 + 1.0 / std::log2(5.0)) / 2.0);
  EXPECT_DOUBLE_EQ(metrics.metric("mrr"), (1.0 + 0.25) / 2.0);
}

TEST(RankingMetrics, MetricRejectsUnknownNamesAndUnevaluatedKs) {
  RankingMetrics metrics({1, 10});
  EXPECT_THROW(metrics.metric("recall@10"), Error);
  EXPECT_THROW(metrics.metric("ndcg@5"), Error);
  EXPECT_THROW(metrics.metric("hr@"), Error);
  EXPECT_THROW(metrics.metric("auc"), Error);
}

TEST(RankingMetrics, EmptyAccumulatorReportsZero) {
  RankingMetrics metrics({10});
  EXPECT_EQ(metrics.count(), 0);
  EXPECT_EQ(metrics.hit_rate(10), 0.0);
  EXPECT_EQ(metrics.mrr(), 0.0);
}

TEST(RankingMetrics, RejectsNegativeRanksAndBadKs) {
  RankingMetrics metrics({10});
  EXPECT_THROW(metrics.add(-1), Error);
  EXPECT_THROW(RankingMetrics({0}), Error);
  EXPECT_THROW(RankingMetrics({5, 5}), Error);
}

TEST(RankingMetrics, SumsOfShardsAddUpToTheWhole) {
  RankingMetrics whole({1, 10}), first({1, 10}), second({1, 10});
  const std::vector<int64_t> ranks = {0, 3, 12, 7, 0, 99, 1};
  for (size_t i = 0; i < ranks.size(); ++i) {
    whole.add(ranks[i]);
    (i % 2 ? second : first).add(ranks[i]);
  }
  first.add_sums(second.sums());
  EXPECT_EQ(first.sums(), whole.sums());
  EXPECT_DOUBLE_EQ(first.ndcg(10), whole.ndcg(10));
  EXPECT_THROW(first.add_sums(std::vector<double>(3, 0.0)), Error);
}

}  // namespace
}  // namespace recforge
