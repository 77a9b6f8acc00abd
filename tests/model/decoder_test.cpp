// Decoder behaviors that need no reference: capacity checks, determinism, packing invariance.
#include "model/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

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
    model.backward(batch, true);
    return model.gradients().download();
  };
  EXPECT_EQ(gradients(), gradients());
}

// Gradient tensors in the order the reducer receives them, with the values each gradient held at
// that moment.
struct Reduced {
  std::vector<int64_t> offsets;
  std::vector<std::vector<float>> values;
};

TEST(Decoder, ReducesEachGradientOnceFinalInTheStepsLastBackwardOnly) {
  ModelConfig config = small_config();
  PackedBatch host = batch_of({{1, 2, 3, 4}, {5, 6}});
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  DeviceBatch batch(Device::kCpu, host, config);
  Reduced reduced;
  const float* base = model.gradients().data();
  model.zero_gradients();
  model.set_gradient_reducer([&](float* gradient, int64_t count) {
    reduced.offsets.push_back(gradient - base);
    reduced.values.emplace_back(gradient, gradient + count);
  });
  for (int pass = 1; pass <= 3; ++pass) {
    model.forward(batch, {});
    model.output_loss(batch, true);
    model.backward(batch, pass == 2);
    if (pass == 1) EXPECT_TRUE(reduced.offsets.empty()) << "reduced before the last backward";
  }
  // Each tensor once, ln_f first and the embeddings last, holding two passes' gradients.
  const ParameterLayout& layout = model.layout();
  ASSERT_EQ(reduced.offsets.size(), layout.tensors().size());
  EXPECT_EQ(reduced.offsets.front(), layout.offset("ln_f.weight"));
  EXPECT_EQ(reduced.offsets[reduced.offsets.size() - 2], layout.offset("wte"));
  EXPECT_EQ(reduced.offsets.back(), layout.offset("wpe"));
  std::vector<int64_t> sorted = reduced.offsets;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  const std::vector<float> after_three = model.gradients().download();
  for (size_t t = 0; t < reduced.offsets.size(); ++t) {
    for (size_t i = 0; i < reduced.values[t].size(); ++i) {
      const float third = after_three[reduced.offsets[t] + i];
      ASSERT_NEAR(reduced.values[t][i] * 1.5f, third, 1e-5f + 1e-4f * std::abs(third))
          << "tensor at " << reduced.offsets[t] << " was not final when reduced";
    }
  }
  // A rank with no tokens in the step's last micro-batch reduces the same tensors in the same
  // order.
  Reduced empty;
  model.set_gradient_reducer(
      [&](float* gradient, int64_t) { empty.offsets.push_back(gradient - base); });
  model.backward(DeviceBatch(Device::kCpu, empty_batch(), config), true);
  EXPECT_EQ(empty.offsets, reduced.offsets);
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
