// The decoder in bf16 mode on the CPU backend (the reference of the GPU path): its forward and
// gradients stay within bf16 precision of fp32 while differing from it, and what bf16 does not
// support is refused with a clear error.
#include <gtest/gtest.h>

#include <iostream>

#include "kernels/cross_entropy.h"
#include "model/decoder.h"
#include "tests/support/reference.h"
#include "tests/support/small_decoder.h"

namespace recforge {
namespace {

using testing::relative_error;
using testing::report_error;

// Room for the uneven batch: tokens up to 299, sequences of up to 40.
ModelConfig config_with(Precision precision) {
  return testing::small_decoder_config(precision, 300, 40);
}

PackedBatch uneven_batch() {
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
Pass run(Precision precision) {
  const ModelConfig config = config_with(precision);
  const PackedBatch host = uneven_batch();
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
    fp32_ = new Pass(run(Precision::kFp32));
    bf16_ = new Pass(run(Precision::kBf16));
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
  Decoder<float> model(Context::cpu(), config_with(Precision::kBf16), 8);
  try {
    model.enable_lora(LoraConfig{}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA adapters run in fp32 only"), std::string::npos);
  }
}

TEST(DecoderBf16Errors, RefusesAFloat64Decoder) {
  EXPECT_THROW(Decoder<double>(Context::cpu(), config_with(Precision::kBf16), 8), Error);
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

}  // namespace
}  // namespace recforge
