// Full-ranking and sampled evaluation, negative sampling and top-K recommendation of a tiny
// decoder, checked against brute force over the model's full logits.
#include "train/eval/evaluation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "model/vocabulary.h"

namespace recforge {
namespace {

constexpr int32_t kNumItems = 40;

ModelConfig tiny_config() {
  ModelConfig config;
  config.vocab_size = vocabulary_size(kNumItems);
  config.max_len = 8;
  config.d_model = 32;  // head size 32: the smallest the attention kernel supports
  config.n_layer = 1;
  config.n_head = 1;
  return config;
}

Decoder<float> tiny_model(uint64_t seed) {
  Decoder<float> model(Context::cpu(), tiny_config(), 64);
  model.load_parameters(initial_parameters(model.config(), model.layout(), seed));
  return model;
}

// Every item row of wte set to item 0's row: every item gets the same score.
void tie_item_embeddings(Decoder<float>& model) {
  std::vector<float> values = model.parameters().download();
  const int C = model.config().d_model;
  float* wte = values.data() + model.layout().offset("wte");
  for (int32_t item = 1; item < kNumItems; ++item) {
    std::copy_n(wte + item_token(0) * C, C, wte + item_token(item) * C);
  }
  model.load_parameters(values);
}

// Item scores at the last position of one sequence, from the model's full logits [N, V].
std::vector<float> brute_force_scores(Decoder<float>& model, std::vector<int32_t> history,
                                      bool masked) {
  const int max_len = model.config().max_len - (masked ? 1 : 0);
  if (static_cast<int>(history.size()) > max_len)
    history.erase(history.begin(), history.end() - max_len);
  std::vector<int32_t> tokens;
  for (int32_t item : history) tokens.push_back(item_token(item));
  if (masked) tokens.push_back(kMaskToken);
  PackedBatch packed = empty_batch();
  packed.add_recent_sequence(tokens, model.config().max_len);
  DeviceBatch batch(Device::kCpu, packed, model.config());
  ForwardOptions options;
  options.mask = masked ? AttentionMask::kBidirectional : AttentionMask::kCausal;
  model.forward(batch, options);
  const int N = packed.num_tokens(), V = model.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(N) * V);
  model.logits(logits.data(), N);
  auto row = logits.begin() + static_cast<int64_t>(N - 1) * V + kFirstItemToken;
  return std::vector<float>(row, row + kNumItems);
}

// #(non-excluded items other than the target scoring >= the target).
int64_t brute_force_rank(const std::vector<float>& scores, const EvalCase& c) {
  int64_t rank = 0;
  for (int32_t item = 0; item < kNumItems; ++item) {
    const bool excluded = std::find(c.excluded.begin(), c.excluded.end(), item) != c.excluded.end();
    if (item != c.target && !excluded && scores[item] >= scores[c.target]) ++rank;
  }
  return rank;
}

// Varied cases: histories of 1..12 items (some longer than max_len), a few excluded items each.
std::vector<EvalCase> varied_cases(int count) {
  std::vector<EvalCase> cases;
  for (int i = 0; i < count; ++i) {
    EvalCase c;
    for (int j = 0; j < 1 + i % 12; ++j) c.history.push_back((7 * i + 3 * j) % kNumItems);
    c.target = (11 * i + 5) % kNumItems;
    if (i % 3 == 0) c.excluded = {(i + 1) % kNumItems, (i + 2) % kNumItems, (i + 1) % kNumItems};
    cases.push_back(c);
  }
  return cases;
}

// One case per item as target, all with the same history: their ranks spell out the ordering.
std::vector<EvalCase> every_target(const std::vector<int32_t>& history) {
  std::vector<EvalCase> cases;
  for (int32_t target = 0; target < kNumItems; ++target) cases.push_back({history, target, {}});
  return cases;
}

std::vector<int64_t> brute_force_ranks(Decoder<float>& model, const std::vector<EvalCase>& cases,
                                       bool masked) {
  std::vector<int64_t> ranks;
  std::vector<int32_t> history;
  std::vector<float> scores;
  for (const EvalCase& c : cases) {
    if (scores.empty() || c.history != history) {
      history = c.history;
      scores = brute_force_scores(model, history, masked);
    }
    ranks.push_back(brute_force_rank(scores, c));
  }
  return ranks;
}

TEST(FullRanking, RanksEqualBruteForceOverTheLogits) {
  Decoder<float> model = tiny_model(3);
  std::vector<EvalCase> cases = varied_cases(30);
  EvalOptions options;
  options.batch_size = 4;
  EXPECT_EQ(full_ranking_ranks(model, kNumItems, cases, options),
            brute_force_ranks(model, cases, false));
}

TEST(FullRanking, ChunkingAndBatchingDoNotChangeRanks) {
  Decoder<float> model = tiny_model(4);
  std::vector<EvalCase> cases = varied_cases(25);
  EvalOptions one_chunk;
  EvalOptions small_chunks;
  small_chunks.item_chunk = 3;  // 14 chunks, the last one partial
  small_chunks.batch_size = 3;
  std::vector<int64_t> expected = full_ranking_ranks(model, kNumItems, cases, one_chunk);
  EXPECT_EQ(full_ranking_ranks(model, kNumItems, cases, small_chunks), expected);
}

TEST(FullRanking, ExcludedItemsAreNotRanked) {
  Decoder<float> model = tiny_model(5);
  const std::vector<int32_t> history = {1, 2, 3};
  std::vector<float> scores = brute_force_scores(model, history, false);
  EvalCase worst{history, 0, {}};
  for (int32_t item = 1; item < kNumItems; ++item) {
    if (scores[item] < scores[worst.target]) worst.target = item;
  }
  EvalCase excluding = worst;
  for (int32_t item = 0; item < kNumItems; ++item) {
    if (item != worst.target && item % 2 == 0) excluding.excluded.push_back(item);
  }
  excluding.excluded.push_back(worst.target);  // the target itself is never excluded
  std::vector<EvalCase> cases = {worst, excluding};
  EvalOptions options;
  options.item_chunk = 7;
  const std::vector<int64_t> ranks = full_ranking_ranks(model, kNumItems, cases, options);
  EXPECT_EQ(ranks[0], kNumItems - 1);
  EXPECT_EQ(ranks[1], kNumItems - 1 - static_cast<int64_t>(excluding.excluded.size() - 1));
}

TEST(FullRanking, TiesArePessimistic) {
  Decoder<float> model = tiny_model(6);
  tie_item_embeddings(model);
  std::vector<EvalCase> cases = varied_cases(12);
  EvalOptions options;
  options.item_chunk = 5;
  const std::vector<int64_t> ranks = full_ranking_ranks(model, kNumItems, cases, options);
  for (size_t i = 0; i < cases.size(); ++i) {
    std::set<int32_t> excluded(cases[i].excluded.begin(), cases[i].excluded.end());
    excluded.erase(cases[i].target);
    EXPECT_EQ(ranks[i], kNumItems - 1 - static_cast<int64_t>(excluded.size())) << "case " << i;
  }
  EXPECT_EQ(evaluate_full_ranking(model, kNumItems, cases, options).hit_rate(1), 0.0);
}

TEST(FullRanking, MaskedModeReadsThePredictionAtTheMask) {
  Decoder<float> model = tiny_model(7);
  std::vector<EvalCase> cases = every_target({4, 9, 2});
  EvalOptions options;
  options.masked = true;
  const std::vector<int64_t> masked = full_ranking_ranks(model, kNumItems, cases, options);
  EXPECT_EQ(masked, brute_force_ranks(model, cases, true));
  options.masked = false;
  EXPECT_NE(masked, full_ranking_ranks(model, kNumItems, cases, options));
}

TEST(FullRanking, LongHistoryKeepsTheMostRecentItems) {
  Decoder<float> model = tiny_model(8);
  std::vector<int32_t> history(12);
  std::iota(history.begin(), history.end(), 20);  // items 20..31, max_len 8
  for (bool masked : {false, true}) {
    EvalOptions options;
    options.masked = masked;
    const int kept = masked ? 7 : 8;
    std::vector<int32_t> recent(history.end() - kept, history.end());
    std::vector<int32_t> oldest(history.begin(), history.begin() + kept);
    const std::vector<int64_t> ranks =
        full_ranking_ranks(model, kNumItems, every_target(history), options);
    EXPECT_EQ(ranks, full_ranking_ranks(model, kNumItems, every_target(recent), options));
    EXPECT_NE(ranks, full_ranking_ranks(model, kNumItems, every_target(oldest), options));
  }
}

TEST(FullRanking, MetricsAreBuiltFromTheRanks) {
  Decoder<float> model = tiny_model(9);
  std::vector<EvalCase> cases = varied_cases(20);
  EvalOptions options;
  RankingMetrics expected(options.ks);
  for (int64_t rank : full_ranking_ranks(model, kNumItems, cases, options)) expected.add(rank);
  RankingMetrics metrics = evaluate_full_ranking(model, kNumItems, cases, options);
  EXPECT_EQ(metrics.count(), 20);
  EXPECT_EQ(metrics.as_map("valid"), expected.as_map("valid"));
}

TEST(FullRanking, RejectsAnEmptyCausalHistoryAndOutOfRangeItems) {
  Decoder<float> model = tiny_model(10);
  std::vector<EvalCase> empty = {{{}, 3, {}}};
  EXPECT_THROW(full_ranking_ranks(model, kNumItems, empty, {}), Error);
  EvalOptions masked;
  masked.masked = true;
  EXPECT_NO_THROW(full_ranking_ranks(model, kNumItems, empty, masked));
  std::vector<EvalCase> bad_target = {{{1}, kNumItems, {}}};
  EXPECT_THROW(full_ranking_ranks(model, kNumItems, bad_target, {}), Error);
  EXPECT_THROW(full_ranking_ranks(model, kNumItems + 1, varied_cases(2), {}), Error);
}

TEST(Sampled, RankCountsNegativesScoringAtLeastTheTarget) {
  Decoder<float> model = tiny_model(11);
  std::vector<EvalCase> cases = varied_cases(15);
  std::vector<std::vector<int32_t>> negatives;
  std::vector<int64_t> expected;
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<int32_t> drawn;
    for (int j = 1; j <= 9; ++j) drawn.push_back((cases[i].target + 4 * j) % kNumItems);
    std::vector<float> scores = brute_force_scores(model, cases[i].history, false);
    int64_t rank = 0;
    for (int32_t item : drawn) rank += scores[item] >= scores[cases[i].target];
    expected.push_back(rank);
    negatives.push_back(drawn);
  }
  EvalOptions options;
  options.item_chunk = 6;
  options.batch_size = 4;
  EXPECT_EQ(sampled_ranks(model, cases, negatives, options), expected);
  EXPECT_EQ(evaluate_sampled(model, cases, negatives, options).count(), 15);
}

TEST(Sampled, TiesArePessimistic) {
  Decoder<float> model = tiny_model(12);
  tie_item_embeddings(model);
  std::vector<EvalCase> cases = varied_cases(5);
  std::vector<std::vector<int32_t>> negatives(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    for (int j = 1; j <= 6; ++j) negatives[i].push_back((cases[i].target + j) % kNumItems);
  }
  for (int64_t rank : sampled_ranks(model, cases, negatives, {})) EXPECT_EQ(rank, 6);
}

TEST(Sampled, RejectsTheTargetAsANegative) {
  Decoder<float> model = tiny_model(13);
  std::vector<EvalCase> cases = {{{1, 2}, 5, {}}};
  std::vector<std::vector<int32_t>> negatives = {{3, 5}};
  EXPECT_THROW(sampled_ranks(model, cases, negatives, {}), Error);
}

struct SamplingInput {
  std::vector<EvalCase> cases;
  std::vector<std::vector<int32_t>> user_items;
};

SamplingInput sampling_input(int count) {
  SamplingInput input;
  for (int i = 0; i < count; ++i) {
    EvalCase c{{i % kNumItems, (i + 1) % kNumItems}, (i + 2) % kNumItems, {}};
    input.user_items.push_back({c.history[0], c.history[1], c.target, (i + 3) % kNumItems});
    input.cases.push_back(c);
  }
  return input;
}

TEST(NegativeSampling, NegativesAreDistinctAndOutsideTheUsersItems) {
  SamplingInput input = sampling_input(50);
  auto negatives = sample_eval_negatives(input.cases, input.user_items, kNumItems, 30, {}, 1);
  ASSERT_EQ(negatives.size(), 50u);
  for (size_t i = 0; i < negatives.size(); ++i) {
    ASSERT_EQ(negatives[i].size(), 30u);
    std::set<int32_t> distinct(negatives[i].begin(), negatives[i].end());
    EXPECT_EQ(distinct.size(), 30u);
    for (int32_t item : negatives[i]) {
      EXPECT_GE(item, 0);
      EXPECT_LT(item, kNumItems);
      EXPECT_EQ(std::count(input.user_items[i].begin(), input.user_items[i].end(), item), 0);
    }
  }
}

TEST(NegativeSampling, SameSeedSameNegativesOtherSeedOthers) {
  SamplingInput input = sampling_input(20);
  auto a = sample_eval_negatives(input.cases, input.user_items, kNumItems, 10, {}, 7);
  auto b = sample_eval_negatives(input.cases, input.user_items, kNumItems, 10, {}, 7);
  auto c = sample_eval_negatives(input.cases, input.user_items, kNumItems, 10, {}, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// Share of draws that fall on the popular items 0..9 (a quarter of the catalog).
double popular_share(const std::vector<std::vector<int32_t>>& negatives) {
  int64_t popular = 0, total = 0;
  for (const auto& drawn : negatives) {
    for (int32_t item : drawn) popular += item < 10;
    total += static_cast<int64_t>(drawn.size());
  }
  return static_cast<double>(popular) / static_cast<double>(total);
}

TEST(NegativeSampling, PopularityWeightingFavorsPopularItems) {
  std::vector<EvalCase> cases(400, EvalCase{{39}, 38, {}});
  std::vector<std::vector<int32_t>> user_items(400, std::vector<int32_t>{38, 39});
  std::vector<int64_t> popularity(kNumItems, 1);
  std::fill(popularity.begin(), popularity.begin() + 10, 100);
  auto weighted = sample_eval_negatives(cases, user_items, kNumItems, 5, popularity, 3);
  auto uniform = sample_eval_negatives(cases, user_items, kNumItems, 5, {}, 3);
  // Weighted: ~1000/1028 of the mass is popular, so nearly all 5 draws are (expected > 0.9).
  // Uniform: 10 of 38 drawable items (expected ~0.26).
  EXPECT_GT(popular_share(weighted), 0.8);
  EXPECT_LT(popular_share(uniform), 0.4);
}

TEST(NegativeSampling, NeverDrawsItemsWithoutPopularity) {
  SamplingInput input = sampling_input(30);
  std::vector<int64_t> popularity(kNumItems, 0);
  for (int32_t item = 0; item < kNumItems; item += 2) popularity[item] = 1 + item;
  auto negatives =
      sample_eval_negatives(input.cases, input.user_items, kNumItems, 8, popularity, 5);
  for (const auto& drawn : negatives) {
    ASSERT_EQ(drawn.size(), 8u);
    for (int32_t item : drawn) EXPECT_EQ(item % 2, 0) << item;
  }
}

TEST(NegativeSampling, RejectsMoreNegativesThanTheUserLeavesFree) {
  SamplingInput input = sampling_input(3);  // up to 4 user items each: at least 36 remain
  EXPECT_NO_THROW(sample_eval_negatives(input.cases, input.user_items, kNumItems, 36, {}, 1));
  EXPECT_THROW(sample_eval_negatives(input.cases, input.user_items, kNumItems, 37, {}, 1), Error);
}

TEST(NegativeSampling, SaveAndLoadRoundTrip) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / "recforge_negatives_test.txt";
  std::vector<std::vector<int32_t>> negatives = {{3, 1, 4}, {}, {15, 9, 2, 6}};
  save_negatives(path, negatives);
  EXPECT_EQ(load_negatives(path), negatives);
  std::filesystem::remove(path);
}

TEST(NegativeSampling, LoadNamesTheBadLine) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / "recforge_negatives_bad.txt";
  {
    std::ofstream out(path);
    out << "1 2 3\n4 x 5\n";
  }
  try {
    load_negatives(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2: 'x'"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Recommend, ReturnsTheTopKOfBruteForceInOrder) {
  Decoder<float> model = tiny_model(14);
  const std::vector<int32_t> history = {5, 6, 7};
  std::vector<float> scores = brute_force_scores(model, history, false);
  std::vector<int32_t> order(kNumItems);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  std::vector<Recommendation> top = recommend(model, kNumItems, history, 10, false, false);
  ASSERT_EQ(top.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(top[i].item, order[i]) << "position " << i;
    EXPECT_NEAR(top[i].score, scores[order[i]], 1e-5f);
  }
}

TEST(Recommend, ExcludesTheHistory) {
  Decoder<float> model = tiny_model(15);
  const std::vector<int32_t> history = {5, 6, 7};
  std::vector<Recommendation> all = recommend(model, kNumItems, history, kNumItems, true, false);
  EXPECT_EQ(all.size(), static_cast<size_t>(kNumItems - 3));
  for (const Recommendation& r : all) {
    EXPECT_EQ(std::count(history.begin(), history.end(), r.item), 0) << r.item;
  }
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i - 1].score, all[i].score);
}

TEST(Recommend, TiesAreOrderedByItemId) {
  Decoder<float> model = tiny_model(16);
  tie_item_embeddings(model);
  std::vector<Recommendation> top =
      recommend(model, kNumItems, std::vector<int32_t>{0, 2}, 4, true, true);
  std::vector<int32_t> items;
  for (const Recommendation& r : top) items.push_back(r.item);
  EXPECT_EQ(items, (std::vector<int32_t>{1, 3, 4, 5}));
}

}  // namespace
}  // namespace recforge
