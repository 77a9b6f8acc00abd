// Float64 finite-difference check of the CPU backward: for a few entries of every parameter
// tensor, the analytic gradient must match (L(θ + h) − L(θ − h)) / 2h. Dropout is on: its masks
// are a pure function of (seed, stream, index), so the loss stays a deterministic function of θ.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/decoder.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

constexpr testing::GradcheckSettings kSettings{5, 1e-5, 1e-5};
constexpr uint64_t kDropoutSeed = 1234;

ModelConfig gradcheck_config() {
  ModelConfig config;
  config.vocab_size = 23;
  config.max_len = 8;
  config.d_model = 32;
  config.n_layer = 2;
  config.n_head = 1;
  config.mlp_ratio = 2;
  config.dropout = 0.1f;
  return config;
}

PackedBatch random_batch(std::mt19937_64& rng, const ModelConfig& config) {
  PackedBatch batch = empty_batch();
  for (int length : {3, 1, 8, 0, 5}) {
    batch.add_sequence(testing::random_ints(rng, length, 0, config.vocab_size),
                       testing::random_ints(rng, length, -1, config.vocab_size));
  }
  return batch;
}

class DecoderGradcheckTest : public ::testing::TestWithParam<AttentionMask> {};

TEST_P(DecoderGradcheckTest, BackwardMatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(testing::fresh_seed());
  const ModelConfig config = gradcheck_config();
  const PackedBatch host_batch = random_batch(rng, config);
  const DeviceBatch batch(Device::kCpu, host_batch, config);
  Decoder<double> model(Context::cpu(), config, host_batch.num_tokens());
  std::vector<double> values =
      testing::random_normal<double>(rng, model.layout().total_size(), 0.3);
  const ForwardOptions options{GetParam(), true, kDropoutSeed};
  auto loss_at = [&](const std::vector<double>& theta) {
    model.parameters().upload(theta);
    model.forward(batch, options);
    return model.output_loss(batch, false);
  };

  model.parameters().upload(values);
  model.zero_gradients();
  model.forward(batch, options);
  model.output_loss(batch, true);
  model.backward(batch, true);
  const std::vector<double> analytic = model.gradients().download();

  testing::expect_gradients_match(model.layout(), values, analytic, loss_at, rng,
                                  "gradcheck.fp64.grad.", kSettings);
}

INSTANTIATE_TEST_SUITE_P(BothMasks, DecoderGradcheckTest,
                         ::testing::Values(AttentionMask::kCausal, AttentionMask::kBidirectional),
                         [](const auto& info) {
                           return info.param == AttentionMask::kCausal ? "Causal" : "Bidirectional";
                         });

}  // namespace
}  // namespace recforge
