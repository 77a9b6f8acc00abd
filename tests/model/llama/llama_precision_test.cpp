// bf16 storage of a frozen base (LlamaConfig::precision = bf16): the model computes exactly what an
// fp32 model computes on the same weights rounded to bf16 — logits, adapter gradients and greedy
// tokens bit for bit — while its weights take little more than half the memory; a base that
// trains is refused.
#include <gtest/gtest.h>

#include "kernels/bf16.h"
#include "model/llama/generator.h"
#include "tests/model/llama/small_llama.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

LlamaConfig config_of(Precision precision) {
  LlamaConfig config = testing::small_llama_config(71);
  config.precision = precision;
  return config;
}

// The values with every linear weight rounded to bf16 (what bf16 storage keeps).
std::vector<float> with_linears_rounded(const ParameterLayout& layout, std::vector<float> values) {
  for (const ParameterInfo& info : layout.tensors()) {
    if (!info.name.ends_with("_proj.weight")) continue;
    for (int64_t i = 0; i < info.size; ++i) {
      float& x = values[info.offset + i];
      x = bf16_to_float(float_to_bf16(x));
    }
  }
  return values;
}

class LlamaPrecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(testing::fresh_seed());
    const LlamaConfig fp32 = config_of(Precision::kFp32);
    values_ = testing::random_normal<float>(rng, llama_layout(fp32).total_size(), 0.3);
    rounded_ = std::make_unique<LlamaModel<float>>(Context::cpu(), fp32, 64, false);
    rounded_->load_parameters(with_linears_rounded(rounded_->layout(), values_));
    bf16_ =
        std::make_unique<LlamaModel<float>>(Context::cpu(), config_of(Precision::kBf16), 64, false);
    bf16_->load_parameters(values_);
    PackedBatch host = empty_batch();
    for (int length : {9, 1, 17}) {
      host.add_sequence(testing::random_ints(rng, length, 0, fp32.vocab_size),
                        testing::random_ints(rng, length, -1, fp32.vocab_size));
    }
    batch_ = std::make_unique<DeviceBatch>(Device::kCpu, host, fp32.batch_limits());
  }

  std::vector<float> logits(LlamaModel<float>& model) {
    model.forward(*batch_);
    std::vector<float> out(static_cast<size_t>(batch_->num_tokens()) * 71);
    model.logits(out.data(), batch_->num_tokens());
    return out;
  }

  std::vector<float> values_;
  std::unique_ptr<LlamaModel<float>> rounded_, bf16_;
  std::unique_ptr<DeviceBatch> batch_;
};

TEST_F(LlamaPrecisionTest, Bf16WeightsGiveTheLogitsOfRoundedFp32WeightsExactly) {
  EXPECT_EQ(logits(*bf16_), logits(*rounded_));
}

TEST_F(LlamaPrecisionTest, AdapterGradientsOverBf16WeightsMatchRoundedFp32Exactly) {
  LlamaLoraConfig lora;
  lora.rank = 4;
  lora.targets = {"all_linear"};
  std::vector<std::vector<float>> gradients;
  for (LlamaModel<float>* model : {bf16_.get(), rounded_.get()}) {
    model->enable_lora(lora, 3);
    model->forward(*batch_);
    model->output_loss(*batch_, true);
    model->backward(*batch_, true);
    gradients.push_back(model->adapter_gradients().download());
  }
  EXPECT_EQ(gradients[0], gradients[1]);
}

TEST_F(LlamaPrecisionTest, GreedyTokensMatchRoundedFp32) {
  GenerationOptions options;
  options.max_new_tokens = 12;
  const std::vector<int32_t> prompt{3, 1, 4, 1, 5};
  LlamaGenerator bf16(*bf16_, 32), fp32(*rounded_, 32);
  EXPECT_EQ(bf16.generate(prompt, options), fp32.generate(prompt, options));
}

TEST_F(LlamaPrecisionTest, Bf16WeightsTakeLittleMoreThanHalfTheMemory) {
  const double ratio = static_cast<double>(bf16_->weight_bytes()) / rounded_->weight_bytes();
  testing::report_error("llama.bf16.weight_bytes_ratio", ratio);
  EXPECT_LT(ratio, 0.6);
}

TEST_F(LlamaPrecisionTest, ABf16BaseThatTrainsIsRefused) {
  EXPECT_THROW(LlamaModel<float>(Context::cpu(), config_of(Precision::kBf16), 8, true), Error);
  EXPECT_THROW(bf16_->set_base_frozen(false), Error);
}

}  // namespace
}  // namespace recforge
