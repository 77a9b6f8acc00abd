// Decoder behaviors that need no reference: capacity checks, determinism, packing invariance.
#include "model/decoder.h"

#include <gtest/gtest.h>

#include "kernels/cross_entropy.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

ModelConfig small_config() {
  ModelConfig config;
  config.vocab_size = 50;
  config.max_len = 16;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  return config;
}

PackedBatch batch_of(const std::vector<std::vector<int32_t>>& sequences) {
  PackedBatch batch = empty_batch();
  for (const auto& s : sequences) {
    std::vector<int32_t> targets(s.begin() + 1, s.end());
    targets.push_back(kIgnoreIndex);
    batch.add_sequence(s, targets);
  }
  return batch;
}

TEST(Decoder, RejectsABatchLargerThanMaxTokens) {
  ModelConfig config = small_config();
  Decoder<float> model(Context::cpu(), config, 4);
  DeviceBatch batch(Device::kCpu, batch_of({{1, 2, 3}, {4, 5}}), config);
  try {
    model.forward(batch, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the model's max_tokens 4"), std::string::npos);
  }
}

TEST(Decoder, TrainingStepIsBitwiseDeterministic) {
  ModelConfig config = small_config();
  PackedBatch host = batch_of({{1, 2, 3, 4}, {5}, {6, 7, 8, 9, 10, 11}});
  auto gradients = [&] {
    Decoder<float> model(Context::cpu(), config, host.num_tokens());
    DeviceBatch batch(Device::kCpu, host, config);
    model.forward(batch, {AttentionMask::kCausal, true, 7});
    model.output_loss(batch, true);
    model.backward(batch);
    return model.gradients().download();
  };
  EXPECT_EQ(gradients(), gradients());
}

TEST(Decoder, ASequenceGivesTheSameLossAloneOrPackedWithOthers) {
  ModelConfig config = small_config();
  config.dropout = 0.0f;
  std::vector<int32_t> sequence = {3, 1, 4, 1, 5, 9, 2, 6};
  auto loss_of = [&](const PackedBatch& host) {
    Decoder<float> model(Context::cpu(), config, host.num_tokens());
    model.load_parameters(initial_parameters(config, model.layout(), 11));
    DeviceBatch batch(Device::kCpu, host, config);
    model.forward(batch, {AttentionMask::kCausal, false, 0});
    return model.output_loss(batch, false);
  };
  PackedBatch alone = batch_of({sequence});
  PackedBatch packed = batch_of({{7, 7, 7}, sequence});
  packed.targets[0] = packed.targets[1] = kIgnoreIndex;  // only `sequence` counts
  EXPECT_NEAR(loss_of(alone), loss_of(packed), 1e-6);
}

}  // namespace
}  // namespace recforge
