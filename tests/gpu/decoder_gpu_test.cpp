// The whole decoder on the GPU against the CPU backend: the same parameters and packed batch give
// the same loss, gradients, and parameters after a few AdamW steps.
#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "tests/gpu/gpu_test_support.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace recforge::gpu_test {
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
  const std::vector<float> initial =
      random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f);
  std::vector<std::vector<float>> gradients, parameters;
  std::vector<double> losses;
  for (const Context& ctx : {cpu_, cuda_}) {
    Decoder<float> model(ctx, config, host.num_tokens());
    model.load_parameters(initial);
    DeviceBatch batch(ctx.device(), host, config);
    AdamW optimizer(
        ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
        AdamWConfig{});
    for (int step = 0; step < 3; ++step) {
      StepResult result =
          train_step(model, optimizer, batch, {GetParam(), true, 5u + step}, 1e-3f, 1.0f);
      losses.push_back(result.loss);
      if (step == 0) gradients.push_back(model.gradients().download());
    }
    parameters.push_back(model.parameters().download());
  }
  for (int step = 0; step < 3; ++step) {
    std::cout << "[ rel_err ] decoder.loss.step" << step << ": "
              << std::abs(losses[3 + step] - losses[step]) / losses[step] << std::endl;
    EXPECT_NEAR(losses[3 + step], losses[step], 1e-5 * losses[step]);
  }
  double gradient_error = relative_error(gradients[1], gradients[0]);
  double parameter_error = relative_error(parameters[1], parameters[0]);
  std::cout << "[ rel_err ] decoder.gradients: " << gradient_error << "\n"
            << "[ rel_err ] decoder.parameters_after_3_steps: " << parameter_error << std::endl;
  EXPECT_LT(gradient_error, 1e-4);
  EXPECT_LT(parameter_error, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(BothMasks, DecoderGpuTest,
                         ::testing::Values(AttentionMask::kCausal, AttentionMask::kBidirectional),
                         [](const auto& info) {
                           return info.param == AttentionMask::kCausal ? "Causal" : "Bidirectional";
                         });

}  // namespace
}  // namespace recforge::gpu_test
