// Packing text examples: targets on the answer tokens only, whole examples per micro-batch within
// the limits, DPO groups with the true answer first and distinct rejected answers.
#include "train/text/text_batches.h"

#include <gtest/gtest.h>

#include <set>

#include "kernels/cross_entropy.h"

namespace recforge {
namespace {

TextExample example(int prompt_length, int answers, int chosen) {
  TextExample e;
  for (int t = 0; t < prompt_length; ++t) e.prompt.push_back(100 + t);
  for (int a = 0; a < answers; ++a) e.answers.push_back({10 * a + 1, 10 * a + 2});
  e.chosen = chosen;
  return e;
}

TEST(AddAnsweredSequence, TargetsOnlyTheAnswerAndEndTokens) {
  PackedBatch batch = empty_batch();
  const std::vector<int32_t> prompt = {5, 6, 7}, answer = {8, 9};
  add_answered_sequence(batch, prompt, answer, 99);
  EXPECT_EQ(batch.tokens, (std::vector<int32_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{kIgnoreIndex, kIgnoreIndex, 8, 9, 99}));
}

TEST(AddAnsweredSequence, WithoutAnEndTokenScoresTheAnswerAlone) {
  PackedBatch batch = empty_batch();
  const std::vector<int32_t> prompt = {5, 6}, answer = {8, 9};
  add_answered_sequence(batch, prompt, answer, -1);
  EXPECT_EQ(batch.tokens, (std::vector<int32_t>{5, 6, 8}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{kIgnoreIndex, 8, 9}));
}

TEST(SftBatches, PackWholeExamplesWithinTheLimits) {
  const std::vector<TextExample> examples = {example(5, 2, 0), example(7, 2, 1), example(4, 2, 0),
                                             example(6, 2, 1), example(3, 2, 0)};
  const auto batches = sft_batches(examples, 99, 2, 14);  // sequences of 7, 9, 6, 8, 5 tokens
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[0].group_sizes.size(), 1u);  // 7 + 9 > 14
  EXPECT_EQ(batches[1].group_sizes.size(), 1u);  // 9 + 6 > 14
  EXPECT_EQ(batches[2].group_sizes.size(), 2u);  // 6 + 8
  EXPECT_EQ(batches[3].group_sizes.size(), 1u);
  int64_t answer_tokens = 0;
  for (const TextBatch& b : batches) {
    EXPECT_LE(b.host.num_tokens(), 14);
    answer_tokens += b.answer_tokens;
  }
  EXPECT_EQ(answer_tokens, 5 * 3);  // two answer tokens and the end token each
}

TEST(SftBatches, RejectAnExampleLargerThanAMicroBatch) {
  const std::vector<TextExample> examples = {example(20, 2, 0)};
  EXPECT_THROW(sft_batches(examples, 99, 4, 16), Error);
}

TEST(DpoBatches, PutTheChosenAnswerFirstThenDistinctRejectedOnes) {
  const std::vector<TextExample> examples = {example(3, 6, 4), example(3, 6, 0)};
  const auto batches = dpo_batches(examples, 3, 11, 8, 1000);
  ASSERT_EQ(batches.size(), 1u);
  const PackedBatch& host = batches[0].host;
  EXPECT_EQ(batches[0].group_sizes, (std::vector<int>{4, 4}));
  for (int g = 0; g < 2; ++g) {
    std::set<int32_t> answers;
    for (int k = 0; k < 4; ++k) {
      const int s = 4 * g + k;
      answers.insert(host.tokens[host.offsets[s + 1] - 1]);  // the answer's first token
    }
    EXPECT_EQ(answers.size(), 4u);
    EXPECT_EQ(host.tokens[host.offsets[4 * g + 1] - 1], 10 * examples[g].chosen + 1);
  }
}

TEST(DpoBatches, CapTheGroupAtTheAnswersThereAre) {
  const std::vector<TextExample> examples = {example(3, 2, 1)};
  EXPECT_EQ(dpo_batches(examples, 5, 1, 8, 1000)[0].group_sizes, (std::vector<int>{2}));
}

}  // namespace
}  // namespace recforge
