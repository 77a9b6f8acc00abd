// The whole decoder on the GPU against the CPU backend: the same parameters and packed batch give
// the same loss, gradients, and parameters after a few AdamW steps.
#include "kernels/cross_entropy.h"
#include "tests/model/decoder_steps.h"

namespace recforge::testing {
namespace {

ModelConfig small_config() {
  ModelConfig config;
  config.vocab_size = 777;
  config.max_len = 64;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  return config;
}

PackedBatch uneven_batch(const ModelConfig& config) {
  PackedBatch batch = empty_batch();
  uint32_t seed = 3;
  for (int length : {1, 17, 64, 0, 33, 2}) {
    batch.add_sequence(random_ints(length, seed, 0, config.vocab_size - 1),
                       random_ints(length, seed + 1, kIgnoreIndex, config.vocab_size - 1));
    seed += 2;
  }
  return batch;
}

class DecoderGpuTest : public GpuTestWithParam<AttentionMask> {};

TEST_P(DecoderGpuTest, StepsMatchTheCpuBackend) {
  const ModelConfig config = small_config();
  const PackedBatch host = uneven_batch(config);
  const StepsRun cpu = run_adamw_steps(cpu_, config, host, GetParam(), 3);
  const StepsRun gpu = run_adamw_steps(cuda_, config, host, GetParam(), 3);
  expect_steps_close("decoder", gpu, cpu, {.loss = 1e-5, .gradients = 1e-4, .parameters = 1e-4});
}

INSTANTIATE_TEST_SUITE_P(BothMasks, DecoderGpuTest,
                         ::testing::Values(AttentionMask::kCausal, AttentionMask::kBidirectional),
                         [](const auto& info) {
                           return info.param == AttentionMask::kCausal ? "Causal" : "Bidirectional";
                         });

}  // namespace
}  // namespace recforge::testing
