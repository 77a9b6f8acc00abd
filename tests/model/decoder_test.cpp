// The whole decoder (model/decoder.h) without a reference model. On the CPU backend: capacity
// checks, determinism, when gradients are reduced, packing invariance; bf16 mode (the reference of
// the GPU path) stays within bf16 precision of fp32 while differing from it, and what bf16 does not
// support is refused with a clear error. On the GPU against the CPU backend: the same parameters
// and packed batch give the same loss, gradients, and parameters after a few AdamW steps, in fp32
// (both masks) and in bf16 (against the CPU's bf16 emulation, same rounding points); and a 100-step
// bf16 loss curve follows fp32.
#include "model/decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "kernels/cross_entropy.h"
#include "tests/support/backends.h"
#include "tests/support/loss_curve.h"
#include "tests/support/reference.h"
#include "tests/support/small_decoder.h"
#include "train/optim/optimizer.h"
#include "train/tasks/next_token.h"
#include "train/train_step.h"

namespace recforge::testing {
namespace {

// ---- fp32 on the CPU: capacity, determinism, gradient reduction, packing ------------------------

ModelConfig small_config() {
  ModelConfig config;
  config.vocab_size = 50;
  config.max_len = 16;
  config.d_model = 64;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  return config;
}

PackedBatch batch_of(const std::vector<std::vector<int32_t>>& sequences) {
  PackedBatch batch = empty_batch();
  for (const auto& s : sequences) {
    std::vector<int32_t> targets(s.begin() + 1, s.end());
    targets.push_back(kIgnoreIndex);
    batch.add_sequence(s, targets);
  }
  return batch;
}

TEST(Decoder, RejectsABatchLargerThanMaxTokens) {
  ModelConfig config = small_config();
  Decoder<float> model(Context::cpu(), config, 4);
  DeviceBatch batch(Device::kCpu, batch_of({{1, 2, 3}, {4, 5}}), config);
  try {
    model.forward(batch, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the model's max_tokens 4"), std::string::npos);
  }
}

TEST(Decoder, TrainingStepIsBitwiseDeterministic) {
  ModelConfig config = small_config();
  PackedBatch host = batch_of({{1, 2, 3, 4}, {5}, {6, 7, 8, 9, 10, 11}});
  auto gradients = [&] {
    Decoder<float> model(Context::cpu(), config, host.num_tokens());
    DeviceBatch batch(Device::kCpu, host, config);
    model.forward(batch, {AttentionMask::kCausal, true, 7});
    model.output_loss(batch, true);
    model.backward(batch, true);
    return model.gradients().download();
  };
  EXPECT_EQ(gradients(), gradients());
}

// Gradient tensors in the order the reducer receives them, with the values each gradient held at
// that moment.
struct Reduced {
  std::vector<int64_t> offsets;
  std::vector<std::vector<float>> values;
};

TEST(Decoder, ReducesEachGradientOnceFinalInTheStepsLastBackwardOnly) {
  ModelConfig config = small_config();
  PackedBatch host = batch_of({{1, 2, 3, 4}, {5, 6}});
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  DeviceBatch batch(Device::kCpu, host, config);
  Reduced reduced;
  const float* base = model.gradients().data();
  model.zero_gradients();
  model.set_gradient_reducer([&](float* gradient, int64_t count) {
    reduced.offsets.push_back(gradient - base);
    reduced.values.emplace_back(gradient, gradient + count);
  });
  for (int pass = 1; pass <= 3; ++pass) {
    model.forward(batch, {});
    model.output_loss(batch, true);
    model.backward(batch, pass == 2);
    if (pass == 1) EXPECT_TRUE(reduced.offsets.empty()) << "reduced before the last backward";
  }
  // Each tensor once, ln_f first and the embeddings last, holding two passes' gradients.
  const ParameterLayout& layout = model.layout();
  ASSERT_EQ(reduced.offsets.size(), layout.tensors().size());
  EXPECT_EQ(reduced.offsets.front(), layout.offset("ln_f.weight"));
  EXPECT_EQ(reduced.offsets[reduced.offsets.size() - 2], layout.offset("wte"));
  EXPECT_EQ(reduced.offsets.back(), layout.offset("wpe"));
  std::vector<int64_t> sorted = reduced.offsets;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  const std::vector<float> after_three = model.gradients().download();
  for (size_t t = 0; t < reduced.offsets.size(); ++t) {
    for (size_t i = 0; i < reduced.values[t].size(); ++i) {
      const float third = after_three[reduced.offsets[t] + i];
      ASSERT_NEAR(reduced.values[t][i] * 1.5f, third, 1e-5f + 1e-4f * std::abs(third))
          << "tensor at " << reduced.offsets[t] << " was not final when reduced";
    }
  }
  // A rank with no tokens in the step's last micro-batch reduces the same tensors in the same
  // order.
  Reduced empty;
  model.set_gradient_reducer(
      [&](float* gradient, int64_t) { empty.offsets.push_back(gradient - base); });
  model.backward(DeviceBatch(Device::kCpu, empty_batch(), config), true);
  EXPECT_EQ(empty.offsets, reduced.offsets);
}

TEST(Decoder, ASequenceGivesTheSameLossAloneOrPackedWithOthers) {
  ModelConfig config = small_config();
  config.dropout = 0.0f;
  std::vector<int32_t> sequence = {3, 1, 4, 1, 5, 9, 2, 6};
  auto loss_of = [&](const PackedBatch& host) {
    Decoder<float> model(Context::cpu(), config, host.num_tokens());
    model.load_parameters(initial_parameters(config, model.layout(), 11));
    DeviceBatch batch(Device::kCpu, host, config);
    model.forward(batch, {AttentionMask::kCausal, false, 0});
    return model.output_loss(batch, false);
  };
  PackedBatch alone = batch_of({sequence});
  PackedBatch packed = batch_of({{7, 7, 7}, sequence});
  packed.targets[0] = packed.targets[1] = kIgnoreIndex;  // only `sequence` counts
  EXPECT_NEAR(loss_of(alone), loss_of(packed), 1e-6);
}

// ---- bf16 on the CPU against fp32, and what bf16 refuses ----------------------------------------

// Room for the uneven batch: tokens up to 299, sequences of up to 40.
ModelConfig precision_config(Precision precision) {
  return small_decoder_config(precision, 300, 40);
}

// Sequences of 1, 40, 7, 0 and 23 tokens following a fixed rule.
PackedBatch uneven_rule_batch() {
  PackedBatch batch = empty_batch();
  int32_t token = 20;
  for (int length : {1, 40, 7, 0, 23}) {
    std::vector<int32_t> tokens, targets;
    for (int i = 0; i < length; ++i) {
      tokens.push_back(token);
      token = 16 + (token * 7 + 3) % 284;
      targets.push_back(i + 1 < length ? token : kIgnoreIndex);
    }
    batch.add_sequence(tokens, targets);
  }
  return batch;
}

struct Pass {
  std::vector<float> hidden, gradients;
  double loss;
};

// One forward, loss and backward from the same random weights.
Pass training_pass(Precision precision) {
  const ModelConfig config = precision_config(precision);
  const PackedBatch host = uneven_rule_batch();
  Decoder<float> model(Context::cpu(), config, host.num_tokens());
  model.load_parameters(initial_parameters(config, model.layout(), 5, 0.05f, 0.5f));
  DeviceBatch batch(Device::kCpu, host, config);
  model.forward(batch, {AttentionMask::kCausal, true, 11});
  Pass pass;
  pass.hidden.assign(model.hidden(), model.hidden() + host.num_tokens() * config.d_model);
  pass.loss = model.output_loss(batch, true);
  model.backward(batch, true);
  pass.gradients = model.gradients().download();
  return pass;
}

class DecoderBf16 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fp32_ = new Pass(training_pass(Precision::kFp32));
    bf16_ = new Pass(training_pass(Precision::kBf16));
  }
  static void TearDownTestSuite() {
    delete fp32_;
    delete bf16_;
  }
  static Pass* fp32_;
  static Pass* bf16_;
};
Pass* DecoderBf16::fp32_ = nullptr;
Pass* DecoderBf16::bf16_ = nullptr;

TEST_F(DecoderBf16, HiddenStatesWithinBf16PrecisionOfFp32) {
  const double error =
      relative_error(std::span<const float>(bf16_->hidden),
                     std::vector<double>(fp32_->hidden.begin(), fp32_->hidden.end()));
  report_error("decoder.bf16.hidden_vs_fp32", error);
  EXPECT_GT(error, 1e-5) << "nothing was rounded to bf16";
  EXPECT_LT(error, 1e-2);
}

TEST_F(DecoderBf16, LossWithinBf16PrecisionOfFp32) {
  const double error = std::abs(bf16_->loss - fp32_->loss) / fp32_->loss;
  report_error("decoder.bf16.loss_vs_fp32", error);
  EXPECT_LT(error, 1e-2);
}

TEST_F(DecoderBf16, GradientsWithinBf16PrecisionOfFp32) {
  const double error =
      relative_error(std::span<const float>(bf16_->gradients),
                     std::vector<double>(fp32_->gradients.begin(), fp32_->gradients.end()));
  report_error("decoder.bf16.gradients_vs_fp32", error);
  EXPECT_GT(error, 1e-5);
  EXPECT_LT(error, 3e-2);
}

TEST(DecoderBf16Errors, RefusesLoraAdapters) {
  Decoder<float> model(Context::cpu(), precision_config(Precision::kBf16), 8);
  try {
    model.enable_lora(LoraConfig{}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA adapters run in fp32 only"), std::string::npos);
  }
}

TEST(DecoderBf16Errors, RefusesAFloat64Decoder) {
  EXPECT_THROW(Decoder<double>(Context::cpu(), precision_config(Precision::kBf16), 8), Error);
}

TEST(DecoderBf16Errors, ParsesOnlyKnownPrecisions) {
  EXPECT_EQ(parse_precision("bf16"), Precision::kBf16);
  EXPECT_EQ(parse_precision("fp32"), Precision::kFp32);
  try {
    parse_precision("fp16");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown precision \"fp16\" (expected fp32 or bf16)");
  }
}

// ---- The CUDA backend against the CPU backend ---------------------------------------------------

// What the steps leave behind: the loss of every step, the gradients of the first step and the
// parameters after the last.
struct StepsRun {
  std::vector<double> losses;
  std::vector<float> first_gradients, parameters;
};

// `steps` AdamW steps (lr 1e-3, gradient clip 1, dropout seed 5 + step) on `ctx` over the same
// packed batch, from parameters drawn uniformly in [-0.1, 0.1] with seed 9.
StepsRun run_adamw_steps(const Context& ctx, const ModelConfig& config, const PackedBatch& host,
                         AttentionMask mask, int steps) {
  Decoder<float> model(ctx, config, host.num_tokens());
  model.load_parameters(random_floats(ParameterLayout(config).total_size(), 9, -0.1f, 0.1f));
  DeviceBatch batch(ctx.device(), host, config);
  AdamW optimizer(
      ctx, {whole_buffer(model.parameters(), model.gradients(), model.layout().num_decayed())},
      AdamWConfig{});
  StepsRun run;
  for (int step = 0; step < steps; ++step) {
    const ForwardOptions options{mask, true, 5u + step};
    auto passes = [&](Decoder<float>& m) { return next_token_pass(m, batch, options); };
    run.losses.push_back(train_step(model, optimizer, passes, {step, 1e-3f, 1.0f}).losses.loss);
    if (step == 0) run.first_gradients = model.gradients().download();
  }
  run.parameters = model.parameters().download();
  return run;
}

struct StepsTolerance {
  double loss, gradients, parameters;
};

// Prints and checks the relative errors of `gpu` against `cpu` as "<name>.loss.step<i>",
// "<name>.gradients" and "<name>.parameters_after_<steps>_steps".
void expect_steps_close(const std::string& name, const StepsRun& gpu, const StepsRun& cpu,
                        StepsTolerance tolerance) {
  for (size_t step = 0; step < cpu.losses.size(); ++step) {
    const double error = std::abs(gpu.losses[step] - cpu.losses[step]) / cpu.losses[step];
    std::cout << "[ rel_err ] " << name << ".loss.step" << step << ": " << error << std::endl;
    EXPECT_LT(error, tolerance.loss) << "step " << step;
  }
  const double gradient_error = relative_error(gpu.first_gradients, cpu.first_gradients);
  const double parameter_error = relative_error(gpu.parameters, cpu.parameters);
  std::cout << "[ rel_err ] " << name << ".gradients: " << gradient_error << "\n"
            << "[ rel_err ] " << name << ".parameters_after_" << cpu.losses.size()
            << "_steps: " << parameter_error << std::endl;
  EXPECT_LT(gradient_error, tolerance.gradients);
  EXPECT_LT(parameter_error, tolerance.parameters);
}

// The fp32 comparison's model: a vocabulary of 777, sequences of up to 64, two layers of 128.
ModelConfig fp32_steps_config() {
  ModelConfig config;
  config.vocab_size = 777;
  config.max_len = 64;
  config.d_model = 128;
  config.n_layer = 2;
  config.n_head = 2;
  config.dropout = 0.1f;
  return config;
}

// Random sequences of 1, 17, 64, 0, 33 and 2 tokens, some targets ignored.
PackedBatch random_uneven_batch(const ModelConfig& config) {
  PackedBatch batch = empty_batch();
  uint32_t seed = 3;
  for (int length : {1, 17, 64, 0, 33, 2}) {
    batch.add_sequence(random_ints(length, seed, 0, config.vocab_size - 1),
                       random_ints(length, seed + 1, kIgnoreIndex, config.vocab_size - 1));
    seed += 2;
  }
  return batch;
}

// What the fp32 and the bf16 step comparisons differ in: the model and its batch (bf16 runs the
// loss-curve model on the planted rule's first batch), the tolerances and the printed label.
struct StepsTraits {
  ModelConfig config;
  PackedBatch batch;
  StepsTolerance tolerance;
  std::string label;
};

StepsTraits steps_traits(Precision precision) {
  if (precision == Precision::kBf16) {
    return {loss_curve_config(Precision::kBf16),
            planted_rule_batch(0),
            {.loss = 1e-3, .gradients = 2e-2, .parameters = 1e-3},
            "decoder.bf16"};
  }
  const ModelConfig config = fp32_steps_config();
  return {config,
          random_uneven_batch(config),
          {.loss = 1e-5, .gradients = 1e-4, .parameters = 1e-4},
          "decoder"};
}

struct StepsCase {
  Precision precision;
  AttentionMask mask;
};

// "Fp32Causal", "Fp32Bidirectional", "Bf16Causal": the test names and the listed parameters.
std::string steps_case_name(const StepsCase& c) {
  return cat(c.precision == Precision::kBf16 ? "Bf16" : "Fp32",
             c.mask == AttentionMask::kCausal ? "Causal" : "Bidirectional");
}

void PrintTo(const StepsCase& c, std::ostream* out) { *out << steps_case_name(c); }

class DecoderGpuTest : public GpuTestWithParam<StepsCase> {};

TEST_P(DecoderGpuTest, StepsMatchTheCpuBackend) {
  const StepsTraits traits = steps_traits(GetParam().precision);
  const StepsRun cpu = run_adamw_steps(cpu_, traits.config, traits.batch, GetParam().mask, 3);
  const StepsRun gpu = run_adamw_steps(cuda_, traits.config, traits.batch, GetParam().mask, 3);
  expect_steps_close(traits.label, gpu, cpu, traits.tolerance);
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndMasks, DecoderGpuTest,
                         ::testing::Values(StepsCase{Precision::kFp32, AttentionMask::kCausal},
                                           StepsCase{Precision::kFp32,
                                                     AttentionMask::kBidirectional},
                                           StepsCase{Precision::kBf16, AttentionMask::kCausal}),
                         [](const auto& info) { return steps_case_name(info.param); });

using DecoderBf16GpuTest = GpuTest;

TEST_F(DecoderBf16GpuTest, LossCurveFollowsFp32Over100Steps) {
  const std::vector<double> fp32 = loss_curve(cpu_, Precision::kFp32, 100);
  const std::vector<double> bf16 = loss_curve(cuda_, Precision::kBf16, 100);
  const LossCurveGap gap = compare_loss_curves("loss cuda bf16 vs cpu fp32", fp32, bf16);
  EXPECT_LT(gap.first, 1e-2);
  EXPECT_LT(gap.mean, 3e-2);
  EXPECT_LT(bf16.back(), 0.5 * bf16.front());
  EXPECT_LT(gap.last, 0.1);
}

}  // namespace
}  // namespace recforge::testing
