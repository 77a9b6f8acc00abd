// A training step: the loss goes down on learnable data, and a non-finite loss stops the step
// with an error naming it, before the parameters change.
#include "train/train_step.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tools/synthetic.h"
#include "train/tasks/next_token.h"

namespace recforge {
namespace {

ModelConfig small_config(int vocab_size) {
  ModelConfig config;
  config.vocab_size = vocab_size;
  config.max_len = 16;
  config.d_model = 32;
  config.n_layer = 1;
  config.n_head = 1;
  return config;
}

TEST(TrainStep, LossDecreasesOnSyntheticSequences) {
  ModelConfig config = small_config(64);
  SyntheticSequences spec;
  spec.vocab_size = config.vocab_size;
  spec.successors = 1;
  spec.jump_probability = 0.0f;
  SyntheticSource source(spec);
  PackedBatch host = source.next_batch(32, 8, 16);
  DeviceBatch batch(Device::kCpu, host, config);
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  AdamW optimizer(
      model.context(),
      {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{1e-2f});
  auto passes = [&](Decoder<float>& m) { return next_token_pass(m, batch, {}); };
  double first = train_step(model, optimizer, passes, {0, 1e-2f, 1.0f}).losses.loss;
  double last = first;
  for (int i = 1; i <= 30; ++i) {
    last = train_step(model, optimizer, passes, {i, 1e-2f, 1.0f}).losses.loss;
  }
  EXPECT_LT(last, 0.5 * first);
}

TEST(TrainStep, NaNLossStopsWithTheStepAndKeepsParameters) {
  ModelConfig config = small_config(16);
  PackedBatch host = empty_batch();
  host.add_sequence(std::vector<int32_t>{1, 2, 3}, std::vector<int32_t>{2, 3, 4});
  DeviceBatch batch(Device::kCpu, host, config);
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  AdamW optimizer(
      model.context(),
      {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{});
  std::vector<float> values = model.parameters().download();
  values[model.layout().offset("ln_f.bias")] = std::numeric_limits<float>::quiet_NaN();
  model.load_parameters(values);
  try {
    train_step(model, optimizer, [&](Decoder<float>& m) { return next_token_pass(m, batch, {}); },
               {0, 1e-3f, 1.0f});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss is nan at step 1"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(optimizer.steps_taken(), 0);
  std::vector<float> after = model.parameters().download();
  EXPECT_TRUE(std::isnan(after[model.layout().offset("ln_f.bias")]));
  EXPECT_EQ(after[0], values[0]);
}

TEST(CheckFiniteLoss, AcceptsFiniteAndRejectsInfinity) {
  EXPECT_NO_THROW(check_finite_loss(2.5, 3));
  EXPECT_THROW(check_finite_loss(std::numeric_limits<double>::infinity(), 3), Error);
}

}  // namespace
}  // namespace recforge
