// A decoder with every linear layer adapted by LoRA and a frozen base, on the GPU against the CPU
// backend: hidden states, adapter and token-embedding gradients, merged outputs.
#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

class DecoderLoraGpuTest : public GpuTest {};

TEST_F(DecoderLoraGpuTest, FrozenBaseStepMatchesTheCpuBackend) {
  ModelConfig config;
  config.vocab_size = 777;
  config.max_len = 64;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  LoraConfig lora;
  lora.rank = 8;
  lora.dropout = 0.1f;
  lora.targets = {"all_linear"};
  PackedBatch host = empty_batch();
  uint32_t seed = 3;
  for (int length : {1, 17, 64, 0, 33, 2}) {
    host.add_sequence(random_ints(length, seed, 0, config.vocab_size - 1),
                      random_ints(length, seed + 1, kIgnoreIndex, config.vocab_size - 1));
    seed += 2;
  }
  const std::vector<float> initial =
      random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f);
  std::vector<float> adapters =
      random_floats(LoraLayout(config, lora).total_size(), 10, -0.1f, 0.1f);
  std::vector<std::vector<float>> hidden, wte_gradient, adapter_gradients, merged;
  for (const Context& ctx : {cpu_, cuda_}) {
    Decoder<float> model(ctx, config, host.num_tokens());
    model.load_parameters(initial);
    model.enable_lora(lora, 1);
    model.load_adapter_parameters(adapters);
    model.set_base_frozen(true);
    DeviceBatch batch(ctx.device(), host, config);
    model.forward(batch, {AttentionMask::kCausal, true, 5});
    const size_t NC = static_cast<size_t>(host.num_tokens()) * config.d_model;
    hidden.emplace_back(NC);
    copy_bytes(hidden.back().data(), Device::kCpu, model.hidden(), ctx.device(), NC * 4);
    model.output_loss(batch, true);
    model.backward(batch, true);
    std::vector<float> gradients = model.gradients().download();
    wte_gradient.emplace_back(gradients.begin(), gradients.begin() + model.layout().at("wte").size);
    adapter_gradients.push_back(model.adapter_gradients().download());
    model.merge_lora();
    merged.push_back(model.parameters().download());
  }
  const double errors[] = {relative_error(hidden[1], hidden[0]),
                           relative_error(wte_gradient[1], wte_gradient[0]),
                           relative_error(adapter_gradients[1], adapter_gradients[0]),
                           relative_error(merged[1], merged[0])};
  const char* names[] = {"hidden", "wte gradient", "adapter gradients", "merged parameters"};
  for (int i = 0; i < 4; ++i) {
    std::cout << "[ rel_err ] decoder.lora." << names[i] << ": " << errors[i] << std::endl;
    EXPECT_LT(errors[i], 1e-4) << names[i];
  }
}

}  // namespace
}  // namespace recforge::testing
