// Packed batches: packing from padded input, and every inconsistency stopping with a clear error.
#include "model/batch.h"

#include <gtest/gtest.h>

#include "kernels/cross_entropy.h"
#include "tests/support/errors.h"

namespace recforge {
namespace {

ModelConfig small_config() {
  ModelConfig config;
  config.vocab_size = 10;
  config.max_len = 4;
  config.d_model = 32;
  config.n_head = 1;
  return config;
}

TEST(PackPadded, KeepsOnlyTheFirstLengthTokensOfEachRow) {
  std::vector<int32_t> tokens = {1, 2, 3, 0,  //
                                 4, 0, 0, 0,  //
                                 5, 6, 7, 8};
  PackedBatch batch = pack_padded(tokens, std::vector<int32_t>{3, 0, 4}, 4);
  EXPECT_EQ(batch.tokens, (std::vector<int32_t>{1, 2, 3, 5, 6, 7, 8}));
  EXPECT_EQ(batch.positions, (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 3}));
  EXPECT_EQ(batch.offsets, (std::vector<int32_t>{0, 3, 3, 7}));
  EXPECT_EQ(batch.max_length(), 4);
}

TEST(PackPadded, RejectsALengthLongerThanThePaddedWidth) {
  std::vector<int32_t> tokens(8, 1);
  EXPECT_ERROR_CONTAINS(pack_padded(tokens, std::vector<int32_t>{2, 5}, 4), "length 5 of row 1");
}

TEST(PackPadded, RejectsTokensThatDoNotFillBTimesT) {
  std::vector<int32_t> tokens(7, 1);
  EXPECT_ERROR_CONTAINS(pack_padded(tokens, std::vector<int32_t>{2, 2}, 4), "expected B·T");
}

TEST(PackedBatchValidate, AcceptsAWellFormedBatch) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 2}, std::vector<int32_t>{2, kIgnoreIndex});
  EXPECT_NO_THROW(batch.validate(small_config()));
}

TEST(PackedBatchValidate, RejectsATokenOutsideTheVocabulary) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 10});
  EXPECT_ERROR_CONTAINS(batch.validate(small_config()), "token 10 at row 1");
}

TEST(PackedBatchValidate, RejectsASequenceLongerThanMaxLen) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 2, 3, 4, 5});
  EXPECT_ERROR_CONTAINS(batch.validate(small_config()), "more than model.max_len");
}

TEST(PackedBatchValidate, RejectsOffsetsThatDoNotEndAtN) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 2});
  batch.offsets.back() = 3;
  EXPECT_ERROR_CONTAINS(batch.validate(small_config()), "offsets end at 3");
}

TEST(PackedBatchValidate, RejectsPositionsThatDoNotMatchTokens) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 2});
  batch.positions.pop_back();
  EXPECT_ERROR_CONTAINS(batch.validate(small_config()), "2 tokens but 1 positions");
}

TEST(PackedBatchValidate, RejectsATargetOutsideTheVocabulary) {
  PackedBatch batch = empty_batch();
  batch.add_sequence(std::vector<int32_t>{1, 2}, std::vector<int32_t>{-2, 3});
  EXPECT_ERROR_CONTAINS(batch.validate(small_config()), "target -2 at row 0");
}

TEST(ModelConfigValidate, RejectsAnUnsupportedHeadSize) {
  ModelConfig config = small_config();
  config.d_model = 48;
  EXPECT_ERROR_CONTAINS(config.validate(), "not a supported head size");
}

TEST(ModelConfigValidate, RejectsDModelNotDivisibleByHeads) {
  ModelConfig config = small_config();
  config.d_model = 64;
  config.n_head = 3;
  EXPECT_ERROR_CONTAINS(config.validate(), "multiple of model.n_head");
}

TEST(ModelConfigValidate, RejectsDropoutOfOne) {
  ModelConfig config = small_config();
  config.dropout = 1.0f;
  EXPECT_ERROR_CONTAINS(config.validate(), "model.dropout");
}

}  // namespace
}  // namespace recforge
