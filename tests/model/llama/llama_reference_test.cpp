// The Llama model against the same model written in PyTorch (tests/reference/llama.py): logits,
// loss, the gradient of every trained tensor and the losses of ten AdamW steps, on a packed batch
// of uneven sequences, with grouped-query attention, tied and untied output layers, partial rotary
// dimensions, both attention masks, and LoRA adapters on every linear layer of a frozen base.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "kernels/adamw.h"
#include "model/llama/model.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::ReferenceCase;

constexpr int kSteps = 10;
const AdamWConfig kAdamW{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};

struct LlamaCase {
  const char* name;
  bool tied;
  int rotary_dim;
  AttentionMask mask;
  int lora_rank;  // 0: the whole base trains
};

LlamaConfig tiny_config(const LlamaCase& c) {
  LlamaConfig config;
  config.vocab_size = 89;
  config.d_model = 96;  // ≠ H·HS = 128: the projections are not square
  config.n_layer = 2;
  config.n_head = 4;
  config.n_kv_head = 2;
  config.head_dim = 32;
  config.ffn_dim = 80;
  config.max_len = 32;
  config.rotary_dim = c.rotary_dim;
  config.rope_base = 10000.0f;
  config.tied_embeddings = c.tied;
  return config;
}

LlamaLoraConfig all_linear_lora(int rank) {
  LlamaLoraConfig lora;
  lora.rank = rank;
  lora.alpha = 8.0f;
  lora.targets = {"all_linear"};
  return lora;
}

PackedBatch random_batch(std::mt19937_64& rng, const LlamaConfig& config) {
  PackedBatch batch = empty_batch();
  for (int length : {5, 1, 32, 0, 9, 2}) {
    auto tokens = testing::random_ints(rng, length, 0, config.vocab_size);
    auto targets = testing::random_ints(rng, length, -1, config.vocab_size);  // -1: ignored
    batch.add_sequence(tokens, targets);
  }
  return batch;
}

// Random values for every tensor, norm gains near 1.
std::vector<float> random_values(std::mt19937_64& rng, const ParameterLayout& layout) {
  auto values = testing::random_normal<float>(rng, layout.total_size(), 0.1);
  for (const ParameterInfo& info : layout.tensors()) {
    if (!info.name.ends_with("norm.weight") && !info.name.ends_with("layernorm.weight")) continue;
    for (int64_t i = 0; i < info.size; ++i) values[info.offset + i] += 1.0f;
  }
  return values;
}

class LlamaReferenceTest : public ::testing::TestWithParam<LlamaCase> {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(testing::fresh_seed());
    config_ = tiny_config(GetParam());
    layout_ = llama_layout(config_);
    batch_ = random_batch(rng, config_);
    parameters_ = random_values(rng, layout_);
    if (lora()) {
      lora_layout_ = llama_lora_layout(config_, all_linear_lora(GetParam().lora_rank));
      adapters_ = random_values(rng, lora_layout_);  // B ≠ 0, so A has a gradient too
    }
    write_case();
    reference_.run();
  }

  bool lora() const { return GetParam().lora_rank > 0; }
  const ParameterLayout& trained_layout() const { return lora() ? lora_layout_ : layout_; }

  void put_tensors(const ParameterLayout& layout, const std::vector<float>& values,
                   std::ofstream& names) {
    for (const ParameterInfo& info : layout.tensors()) {
      reference_.put("param." + info.name,
                     std::span<const float>(values.data() + info.offset, info.size), info.shape);
      names << info.name << "\n";
    }
  }

  void write_case() {
    const int64_t N = batch_.num_tokens();
    reference_.put("tokens", batch_.tokens, {N});
    reference_.put("positions", batch_.positions, {N});
    reference_.put("offsets", batch_.offsets, {static_cast<int64_t>(batch_.offsets.size())});
    reference_.put("targets", batch_.targets, {N});
    std::ofstream names(reference_.dir() / "names.txt"), trained(reference_.dir() / "trained.txt");
    put_tensors(layout_, parameters_, names);
    if (lora()) put_tensors(lora_layout_, adapters_, names);
    for (const ParameterInfo& info : trained_layout().tensors()) trained << info.name << "\n";
    const std::pair<const char*, double> scalars[] = {
        {"n_layer", config_.n_layer},
        {"n_head", config_.n_head},
        {"n_kv_head", config_.n_kv_head},
        {"head_dim", config_.head_dim},
        {"rotary_dim", config_.rotary_dim},
        {"rope_base", config_.rope_base},
        {"rms_eps", config_.rms_eps},
        {"causal", GetParam().mask == AttentionMask::kCausal},
        {"tied", config_.tied_embeddings},
        {"lora_rank", GetParam().lora_rank},
        {"lora_scale", lora() ? all_linear_lora(GetParam().lora_rank).scale() : 0.0},
        {"lr", kAdamW.lr},
        {"beta1", kAdamW.beta1},
        {"beta2", kAdamW.beta2},
        {"eps", kAdamW.eps},
        {"weight_decay", kAdamW.weight_decay},
        {"steps", kSteps}};
    for (const auto& [name, value] : scalars) reference_.put_scalar(name, value);
  }

  // A model with the case's weights (and adapters, base frozen).
  std::unique_ptr<LlamaModel<float>> make_model() {
    auto model =
        std::make_unique<LlamaModel<float>>(Context::cpu(), config_, batch_.num_tokens(), !lora());
    model->load_parameters(parameters_);
    if (lora()) {
      model->enable_lora(all_linear_lora(GetParam().lora_rank), 0);
      model->load_adapter_parameters(adapters_);
    }
    return model;
  }
  Buffer<float>& trained_parameters(LlamaModel<float>& model) {
    return lora() ? model.adapter_parameters() : model.parameters();
  }
  Buffer<float>& trained_gradients(LlamaModel<float>& model) {
    return lora() ? model.adapter_gradients() : model.gradients();
  }
  std::string label(const std::string& what) const {
    return std::string("llama.") + GetParam().name + "." + what;
  }

  LlamaConfig config_;
  ParameterLayout layout_, lora_layout_;
  PackedBatch batch_;
  std::vector<float> parameters_, adapters_;
  ReferenceCase reference_{"llama.py", "model"};
};

TEST_P(LlamaReferenceTest, LogitsLossAndEveryGradientMatchPyTorch) {
  auto model = make_model();
  DeviceBatch batch(Device::kCpu, batch_, config_.batch_limits());
  model->forward(batch, {GetParam().mask});

  std::vector<float> logits(static_cast<size_t>(batch.num_tokens()) * config_.vocab_size, NAN);
  model->logits(logits.data(), batch.num_tokens());
  const double logits_error = testing::relative_error(logits, reference_.result("logits"));
  testing::report_error(label("logits"), logits_error);
  EXPECT_LT(logits_error, 1e-5);

  const double loss = model->output_loss(batch, true);
  const double expected_loss = reference_.result("loss")[0];
  testing::report_error(label("loss"), std::abs(loss - expected_loss) / expected_loss);
  EXPECT_NEAR(loss, expected_loss, 1e-5 * expected_loss);

  model->backward(batch, true);
  const std::vector<float> gradients = trained_gradients(*model).download();
  for (const ParameterInfo& info : trained_layout().tensors()) {
    std::span<const float> grad(gradients.data() + info.offset, info.size);
    const double error = testing::relative_error(grad, reference_.result("grad." + info.name));
    testing::report_error(label("grad." + info.name), error);
    EXPECT_LT(error, 1e-4) << info.name;
  }
}

TEST_P(LlamaReferenceTest, TenAdamWStepsFollowPyTorchLosses) {
  auto model = make_model();
  DeviceBatch batch(Device::kCpu, batch_, config_.batch_limits());
  const ParameterLayout& layout = trained_layout();
  Buffer<float> m(Device::kCpu, layout.total_size()), v(Device::kCpu, layout.total_size());
  m.zero(model->context());
  v.zero(model->context());
  const std::vector<double> expected = reference_.result("losses");
  for (int step = 1; step <= kSteps; ++step) {
    model->zero_gradients();
    model->forward(batch, {GetParam().mask});
    const double loss = model->output_loss(batch, true);
    model->backward(batch, true);
    adamw_update(model->context(), trained_parameters(*model).data(),
                 trained_gradients(*model).data(), m.data(), v.data(), layout.total_size(),
                 layout.num_decayed(), kAdamW, step);
    const double error = std::abs(loss - expected[step - 1]) / expected[step - 1];
    testing::report_error(label("adamw_loss.step" + std::to_string(step)), error);
    EXPECT_LT(error, 1e-4) << "step " << step;
  }
  EXPECT_LT(expected.back(), expected.front());  // the reference itself learns
}

INSTANTIATE_TEST_SUITE_P(
    Variants, LlamaReferenceTest,
    ::testing::Values(LlamaCase{"TiedCausal", true, 32, AttentionMask::kCausal, 0},
                      LlamaCase{"UntiedPartialRotary", false, 16, AttentionMask::kCausal, 0},
                      LlamaCase{"Bidirectional", true, 32, AttentionMask::kBidirectional, 0},
                      LlamaCase{"LoraOnFrozenBase", false, 32, AttentionMask::kCausal, 4}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace recforge
