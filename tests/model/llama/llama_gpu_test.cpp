// The Llama model on the CUDA backend against the CPU backend on the same weights and batch:
// logits, loss and every gradient of the whole base (fp32), the adapters' gradients over a frozen
// base in fp32 and bf16 storage, and greedy generation with the key/value cache. Suites *Gpu*
// (label gpu): they skip without a device. Beside them, the CPU step's determinism.
#include <gtest/gtest.h>

#include <cmath>

#include "model/llama/generator.h"
#include "tests/support/backends.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

LlamaConfig gpu_config(Precision precision) {
  LlamaConfig config;
  config.vocab_size = 301;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_kv_head = 2;
  config.head_dim = 64;
  config.ffn_dim = 192;
  config.max_len = 128;
  config.rotary_dim = 64;
  config.tied_embeddings = false;
  config.precision = precision;
  return config;
}

PackedBatch gpu_batch(const LlamaConfig& config) {
  std::mt19937_64 rng(17);
  PackedBatch batch = empty_batch();
  for (int length : {37, 1, 90, 0, 12}) {
    batch.add_sequence(random_ints(rng, length, 0, config.vocab_size),
                       random_ints(rng, length, -1, config.vocab_size));
  }
  return batch;
}

struct LlamaRun {
  std::vector<float> logits, gradients;
  double loss = 0.0;
};

// One forward, loss and backward on `ctx`; with LoRA the adapters' gradients, else the base's.
LlamaRun run_model(const Context& ctx, Precision precision, bool lora) {
  const LlamaConfig config = gpu_config(precision);
  const PackedBatch host = gpu_batch(config);
  LlamaModel<float> model(ctx, config, host.num_tokens(), !lora);
  std::mt19937_64 rng(3);
  model.load_parameters(random_normal<float>(rng, model.layout().total_size(), 0.2));
  if (lora) {
    LlamaLoraConfig adapters;
    adapters.rank = 4;
    adapters.targets = {"all_linear"};
    model.enable_lora(adapters, 5);
    model.load_adapter_parameters(random_normal<float>(rng, model.lora_layout().total_size(), 0.1));
  }
  const DeviceBatch batch(ctx.device(), host, config.batch_limits());
  model.forward(batch);
  LlamaRun run;
  Buffer<float> logits(ctx.device(), static_cast<size_t>(host.num_tokens()) * config.vocab_size);
  model.logits(logits.data(), host.num_tokens());
  run.logits = logits.download();
  run.loss = model.output_loss(batch, true);
  model.backward(batch, true);
  run.gradients = lora ? model.adapter_gradients().download() : model.gradients().download();
  return run;
}

// Determinism on the CPU (and the helper above exercised where no GPU is): two runs of the same
// step give the same bits.
TEST(LlamaDeterminismTest, TwoRunsGiveBitwiseEqualLogitsAndGradients) {
  const Context cpu = Context::cpu();
  for (auto [precision, lora] :
       {std::pair{Precision::kFp32, false}, std::pair{Precision::kBf16, true}}) {
    const LlamaRun first = run_model(cpu, precision, lora),
                   second = run_model(cpu, precision, lora);
    EXPECT_EQ(first.logits, second.logits);
    EXPECT_EQ(first.gradients, second.gradients);
    EXPECT_EQ(first.loss, second.loss);
    EXPECT_TRUE(std::isfinite(first.loss) && first.loss > 0.0);
  }
}

struct GpuCase {
  Precision precision;
  bool lora;
};

class LlamaGpuTest : public GpuTestWithParam<GpuCase> {};

TEST_P(LlamaGpuTest, ForwardLossAndGradientsMatchTheCpuBackend) {
  const LlamaRun cpu = run_model(cpu_, GetParam().precision, GetParam().lora);
  const LlamaRun gpu = run_model(cuda_, GetParam().precision, GetParam().lora);
  const std::string label =
      cat("llama.gpu.", precision_name(GetParam().precision), GetParam().lora ? ".lora" : ".base");
  expect_close(label + ".logits", gpu.logits, cpu.logits, 1e-4);
  expect_close(label + ".gradients", gpu.gradients, cpu.gradients, 1e-3);
  EXPECT_NEAR(gpu.loss, cpu.loss, 1e-4 * cpu.loss);
}

INSTANTIATE_TEST_SUITE_P(Storage, LlamaGpuTest,
                         ::testing::Values(GpuCase{Precision::kFp32, false},
                                           GpuCase{Precision::kFp32, true},
                                           GpuCase{Precision::kBf16, true}),
                         [](const auto& info) {
                           return cat(precision_name(info.param.precision),
                                      info.param.lora ? "Lora" : "Base");
                         });

// The weighted per-sequence loss of text SFT and DPO (counted rows gathered, their gradient
// scattered back), with weights of both signs, on LoRA adapters over a frozen base.
LlamaRun run_weighted(const Context& ctx) {
  const LlamaConfig config = gpu_config(Precision::kFp32);
  const PackedBatch host = gpu_batch(config);
  LlamaModel<float> model(ctx, config, host.num_tokens(), false);
  std::mt19937_64 rng(7);
  model.load_parameters(random_normal<float>(rng, model.layout().total_size(), 0.2));
  LlamaLoraConfig adapters;
  adapters.rank = 4;
  adapters.targets = {"q_proj", "v_proj", "down_proj"};
  model.enable_lora(adapters, 5);
  model.load_adapter_parameters(random_normal<float>(rng, model.lora_layout().total_size(), 0.1));
  const DeviceBatch batch(ctx.device(), host, config.batch_limits());
  model.forward(batch);
  const std::vector<double> weights = {0.5, -0.25, 0.5, 1.0, -0.75};
  LlamaRun run;
  for (double loss : model.sequence_losses(batch, host)) run.logits.push_back(float(loss));
  model.zero_gradients();
  run.loss = model.weighted_sequence_loss(batch, host, weights, true);
  model.backward(batch, true);
  run.gradients = model.adapter_gradients().download();
  return run;
}

using LlamaWeightedLossGpuTest = GpuTest;

TEST_F(LlamaWeightedLossGpuTest, SequenceLossesAndAdapterGradientsMatchTheCpuBackend) {
  const LlamaRun cpu = run_weighted(cpu_), gpu = run_weighted(cuda_);
  expect_close("llama.gpu.weighted.sequence_losses", gpu.logits, cpu.logits, 1e-4);
  expect_close("llama.gpu.weighted.gradients", gpu.gradients, cpu.gradients, 1e-3);
  EXPECT_NEAR(gpu.loss, cpu.loss, 1e-4 * std::abs(cpu.loss));
}

using LlamaGenerationGpuTest = GpuTest;

TEST_F(LlamaGenerationGpuTest, GreedyTokensMatchTheCpuBackend) {
  const LlamaConfig config = gpu_config(Precision::kFp32);
  std::mt19937_64 rng(11);
  const std::vector<float> values =
      random_normal<float>(rng, llama_layout(config).total_size(), 0.3);
  GenerationOptions options;
  options.max_new_tokens = 24;
  const std::vector<int32_t> prompt = random_ints(rng, 40, 0, config.vocab_size);
  std::vector<std::vector<int32_t>> generated;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    LlamaModel<float> model(*ctx, config, 16, false);  // the prompt prefilled in 3 chunks
    model.load_parameters(values);
    LlamaGenerator generator(model, 64);
    generated.push_back(generator.generate(prompt, options));
  }
  EXPECT_EQ(generated[1], generated[0]);
}

}  // namespace
}  // namespace recforge::testing
