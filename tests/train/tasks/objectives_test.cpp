// Target construction of the pre-training objectives: next-K behaviors and masked behaviors.
#include "train/tasks/objectives.h"

#include <gtest/gtest.h>

#include <vector>

#include "kernels/cross_entropy.h"
#include "model/vocabulary.h"

namespace recforge {
namespace {

constexpr int32_t kNone = kIgnoreIndex;

TEST(NextItemsBatch, InputsDropTheLastItemRightAlignedAndTargetsAreTheNextK) {
  const std::vector<int32_t> a = {5, 6, 7, 8}, b = {9, 3};
  const std::vector<ItemSequence> sequences = {a, b};
  ObjectiveBatch batch = make_next_items_batch(sequences, 2, 8);
  EXPECT_EQ(batch.inputs.tokens,
            (std::vector<int32_t>{item_token(5), item_token(6), item_token(7), item_token(9)}));
  EXPECT_EQ(batch.inputs.positions, (std::vector<int32_t>{5, 6, 7, 7}));  // right-aligned to 8
  EXPECT_EQ(batch.inputs.offsets, (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{6, 7, 7, 8, 8, kNone, 3, kNone}));
  EXPECT_EQ(batch.K, 2);
  EXPECT_EQ(batch.num_targets, 6);
}

TEST(NextItemsBatch, KOfOneIsNextItemPrediction) {
  const std::vector<int32_t> a = {1, 2, 3};
  const std::vector<ItemSequence> sequences = {a};
  ObjectiveBatch batch = make_next_items_batch(sequences, 1, 8);
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(batch.num_targets, 2);
}

TEST(NextItemsBatch, SkipsSequencesTooShortToPredictAnything) {
  const std::vector<int32_t> one = {4}, two = {1, 2};
  const std::vector<ItemSequence> sequences = {one, two};
  ObjectiveBatch batch = make_next_items_batch(sequences, 1, 8);
  EXPECT_EQ(batch.inputs.num_sequences(), 1);
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{2}));
}

class MaskedItemsBatch : public ::testing::Test {
 protected:
  std::vector<int32_t> long_sequence = std::vector<int32_t>(20), single = {42};
  void SetUp() override {
    for (int i = 0; i < 20; ++i) long_sequence[i] = 100 + i;
  }
  std::vector<ItemSequence> sequences() const { return {long_sequence, single}; }
};

TEST_F(MaskedItemsBatch, MasksTheConfiguredShareAndAtLeastOneItem) {
  ObjectiveBatch batch = make_masked_items_batch(sequences(), 0.2f, 32, 7, 0);
  int masked_first = 0;
  for (int i = 0; i < 20; ++i) masked_first += batch.inputs.tokens[i] == kMaskToken;
  EXPECT_EQ(masked_first, 4);
  EXPECT_EQ(batch.inputs.tokens[20], kMaskToken);  // a single item is always masked
  EXPECT_EQ(batch.num_targets, 5);
}

TEST_F(MaskedItemsBatch, TargetsAreTheOriginalItemsAtMaskedPositionsOnly) {
  const std::vector<ItemSequence> input = sequences();
  ObjectiveBatch batch = make_masked_items_batch(input, 0.3f, 32, 11, 3);
  std::vector<int32_t> flat(long_sequence);
  flat.push_back(42);
  for (size_t i = 0; i < flat.size(); ++i) {
    if (batch.inputs.tokens[i] == kMaskToken) {
      EXPECT_EQ(batch.targets[i], flat[i]);
    } else {
      EXPECT_EQ(batch.targets[i], kNone);
      EXPECT_EQ(batch.inputs.tokens[i], item_token(flat[i]));
    }
  }
}

TEST_F(MaskedItemsBatch, SameSeedAndStreamGiveTheSameMasks) {
  ObjectiveBatch a = make_masked_items_batch(sequences(), 0.25f, 32, 5, 9);
  ObjectiveBatch b = make_masked_items_batch(sequences(), 0.25f, 32, 5, 9);
  ObjectiveBatch c = make_masked_items_batch(sequences(), 0.25f, 32, 5, 10);
  EXPECT_EQ(a.inputs.tokens, b.inputs.tokens);
  EXPECT_NE(a.inputs.tokens, c.inputs.tokens);
}

}  // namespace
}  // namespace recforge
