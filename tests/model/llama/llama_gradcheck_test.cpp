// Float64 finite-difference check of the Llama model's CPU backward: for a few entries of every
// trained tensor, the analytic gradient must match (L(θ + h) − L(θ − h)) / 2h. Two models: the
// whole base training (untied output layer, partial rotary dimension, grouped-query attention), and
// LoRA adapters with dropout on a frozen base (the masks are a pure function of seed, stream and
// index, so the loss stays a deterministic function of θ).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/llama/model.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

constexpr testing::GradcheckSettings kSettings{4, 1e-5, 1e-5};
constexpr uint64_t kDropoutSeed = 77;

LlamaConfig gradcheck_config() {
  LlamaConfig config;
  config.vocab_size = 23;
  config.d_model = 40;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_kv_head = 1;
  config.head_dim = 32;
  config.ffn_dim = 24;
  config.max_len = 8;
  config.rotary_dim = 16;
  config.tied_embeddings = false;
  return config;
}

PackedBatch random_batch(std::mt19937_64& rng, const LlamaConfig& config) {
  PackedBatch batch = empty_batch();
  for (int length : {3, 1, 8, 0, 5}) {
    batch.add_sequence(testing::random_ints(rng, length, 0, config.vocab_size),
                       testing::random_ints(rng, length, -1, config.vocab_size));
  }
  return batch;
}

TEST(LlamaGradcheckTest, BaseBackwardMatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = gradcheck_config();
  const PackedBatch host_batch = random_batch(rng, config);
  const DeviceBatch batch(Device::kCpu, host_batch, config.batch_limits());
  LlamaModel<double> model(Context::cpu(), config, host_batch.num_tokens());
  std::vector<double> values =
      testing::random_normal<double>(rng, model.layout().total_size(), 0.3);
  auto loss_at = [&](const std::vector<double>& theta) {
    model.parameters().upload(theta);
    model.forward(batch);
    return model.output_loss(batch, false);
  };
  model.parameters().upload(values);
  model.zero_gradients();
  model.forward(batch);
  model.output_loss(batch, true);
  model.backward(batch, true);
  testing::expect_gradients_match(model.layout(), values, model.gradients().download(), loss_at,
                                  rng, "llama.gradcheck.base.", kSettings);
}

TEST(LlamaGradcheckTest, AdapterBackwardWithDropoutMatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(testing::fresh_seed());
  const LlamaConfig config = gradcheck_config();
  const PackedBatch host_batch = random_batch(rng, config);
  const DeviceBatch batch(Device::kCpu, host_batch, config.batch_limits());
  LlamaModel<double> model(Context::cpu(), config, host_batch.num_tokens(), false);
  model.parameters().upload(testing::random_normal<double>(rng, model.layout().total_size(), 0.3));
  LlamaLoraConfig lora;
  lora.rank = 3;
  lora.dropout = 0.2f;
  lora.targets = {"all_linear"};
  model.enable_lora(lora, 1);
  std::vector<double> values =
      testing::random_normal<double>(rng, model.lora_layout().total_size(), 0.3);
  const LlamaForwardOptions options{AttentionMask::kCausal, true, true, kDropoutSeed};
  auto loss_at = [&](const std::vector<double>& theta) {
    model.adapter_parameters().upload(theta);
    model.forward(batch, options);
    return model.output_loss(batch, false);
  };
  model.adapter_parameters().upload(values);
  model.zero_gradients();
  model.forward(batch, options);
  model.output_loss(batch, true);
  model.backward(batch, true);
  testing::expect_gradients_match(model.lora_layout(), values, model.adapter_gradients().download(),
                                  loss_at, rng, "llama.gradcheck.lora.", kSettings);
}

}  // namespace
}  // namespace recforge
