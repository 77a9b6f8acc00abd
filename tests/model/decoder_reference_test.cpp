// The decoder against the same model written in PyTorch (tests/reference/model.py): logits, loss,
// the gradient of every parameter tensor and the losses of ten AdamW steps, in both attention
// modes, on a packed batch of uneven sequences.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/adamw.h"
#include "model/decoder.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::ReferenceCase;

constexpr int kSteps = 10;
const AdamWConfig kAdamW{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};

ModelConfig tiny_config() {
  ModelConfig config;
  config.vocab_size = 97;
  config.max_len = 24;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.mlp_ratio = 4;
  return config;
}

PackedBatch random_batch(std::mt19937_64& rng, const ModelConfig& config) {
  PackedBatch batch = empty_batch();
  for (int length : {5, 1, 24, 0, 9, 2}) {
    auto tokens = testing::random_ints(rng, length, 0, config.vocab_size);
    auto targets = testing::random_ints(rng, length, -1, config.vocab_size);  // -1: ignored
    batch.add_sequence(tokens, targets);
  }
  return batch;
}

// Random values for every parameter, layer-norm gains near 1, so every gradient is exercised.
std::vector<float> random_parameters(std::mt19937_64& rng, const ParameterLayout& layout) {
  auto values = testing::random_normal<float>(rng, layout.total_size(), 0.1);
  for (const ParameterInfo& info : layout.tensors()) {
    if (info.name.find("ln_") != std::string::npos && info.name.ends_with("weight")) {
      for (int64_t i = 0; i < info.size; ++i) values[info.offset + i] += 1.0f;
    }
  }
  return values;
}

class DecoderReferenceTest : public ::testing::TestWithParam<AttentionMask> {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(testing::fresh_seed());
    config_ = tiny_config();
    layout_ = std::make_unique<ParameterLayout>(config_);
    batch_ = random_batch(rng, config_);
    parameters_ = random_parameters(rng, *layout_);
    write_case();
    reference_.run();
  }

  void write_case() {
    const int64_t N = batch_.num_tokens();
    reference_.put("tokens", batch_.tokens, {N});
    reference_.put("positions", batch_.positions, {N});
    reference_.put("offsets", batch_.offsets, {static_cast<int64_t>(batch_.offsets.size())});
    reference_.put("targets", batch_.targets, {N});
    for (const ParameterInfo& info : layout_->tensors()) {
      reference_.put("param." + info.name,
                     std::span<const float>(parameters_.data() + info.offset, info.size),
                     info.shape);
    }
    reference_.put_scalar("n_layer", config_.n_layer);
    reference_.put_scalar("n_head", config_.n_head);
    reference_.put_scalar("causal", GetParam() == AttentionMask::kCausal);
    reference_.put_scalar("lr", kAdamW.lr);
    reference_.put_scalar("beta1", kAdamW.beta1);
    reference_.put_scalar("beta2", kAdamW.beta2);
    reference_.put_scalar("eps", kAdamW.eps);
    reference_.put_scalar("weight_decay", kAdamW.weight_decay);
    reference_.put_scalar("steps", kSteps);
  }

  std::string mode() const { return GetParam() == AttentionMask::kCausal ? "causal" : "bidir"; }

  ModelConfig config_;
  std::unique_ptr<ParameterLayout> layout_;
  PackedBatch batch_;
  std::vector<float> parameters_;
  ReferenceCase reference_{"model.py", "decoder"};
};

TEST_P(DecoderReferenceTest, LogitsLossAndEveryGradientMatchPyTorch) {
  Decoder<float> model(Context::cpu(), config_, batch_.num_tokens());
  model.load_parameters(parameters_);
  DeviceBatch batch(Device::kCpu, batch_, config_);
  model.forward(batch, {GetParam(), false, 0});

  std::vector<float> logits(static_cast<size_t>(batch.num_tokens()) * config_.vocab_size, NAN);
  model.logits(logits.data(), batch.num_tokens());
  double logits_error = testing::relative_error(logits, reference_.result("logits"));
  testing::report_error("decoder." + mode() + ".logits", logits_error);
  EXPECT_LT(logits_error, 1e-5);

  double loss = model.output_loss(batch, true);
  double expected_loss = reference_.result("loss")[0];
  testing::report_error("decoder." + mode() + ".loss",
                        std::abs(loss - expected_loss) / expected_loss);
  EXPECT_NEAR(loss, expected_loss, 1e-5 * expected_loss);

  model.backward(batch, true);
  std::vector<float> gradients = model.gradients().download();
  for (const ParameterInfo& info : layout_->tensors()) {
    std::span<const float> grad(gradients.data() + info.offset, info.size);
    double error = testing::relative_error(grad, reference_.result("grad." + info.name));
    testing::report_error("decoder." + mode() + ".grad." + info.name, error);
    EXPECT_LT(error, 1e-4) << info.name;
  }
}

TEST_P(DecoderReferenceTest, TenAdamWStepsFollowPyTorchLosses) {
  Decoder<float> model(Context::cpu(), config_, batch_.num_tokens());
  model.load_parameters(parameters_);
  DeviceBatch batch(Device::kCpu, batch_, config_);
  Buffer<float> m(Device::kCpu, layout_->total_size()), v(Device::kCpu, layout_->total_size());
  m.zero(model.context());
  v.zero(model.context());
  std::vector<double> expected = reference_.result("losses");
  for (int step = 1; step <= kSteps; ++step) {
    model.zero_gradients();
    model.forward(batch, {GetParam(), true, 0});
    double loss = model.output_loss(batch, true);
    model.backward(batch, true);
    adamw_update(model.context(), model.parameters().data(), model.gradients().data(), m.data(),
                 v.data(), layout_->total_size(), layout_->num_decayed(), kAdamW, step);
    double error = std::abs(loss - expected[step - 1]) / expected[step - 1];
    testing::report_error("decoder." + mode() + ".adamw_loss.step" + std::to_string(step), error);
    EXPECT_LT(error, 1e-4) << "step " << step;
  }
  EXPECT_LT(expected.back(), expected.front());  // the reference itself learns
}

INSTANTIATE_TEST_SUITE_P(BothMasks, DecoderReferenceTest,
                         ::testing::Values(AttentionMask::kCausal, AttentionMask::kBidirectional),
                         [](const auto& info) {
                           return info.param == AttentionMask::kCausal ? "Causal" : "Bidirectional";
                         });

}  // namespace
}  // namespace recforge
