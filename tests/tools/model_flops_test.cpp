// The FLOP model behind MFU: hand-computed numbers for a tiny decoder, and GPT-2 small against its
// known parameter count and PaLM's per-token 6·N + 12·L·T·C (with and without the causal halving).
#include "tools/model_flops.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/parameters.h"

namespace recforge {
namespace {

ModelConfig tiny_config() {
  ModelConfig config;
  config.vocab_size = 10;
  config.max_len = 8;
  config.d_model = 4;
  config.n_layer = 1;
  config.n_head = 1;
  return config;
}

ModelConfig gpt2_small_config() {
  ModelConfig config;
  config.vocab_size = 50257;
  config.max_len = 1024;
  config.d_model = 768;
  config.n_layer = 12;
  config.n_head = 12;
  return config;
}

TEST(ModelFlops, TinyDecoderMatmulParametersCountEveryMatrixAndTheTiedOutput) {
  // qkv 3·16 + out 16 + fc 4·16 + proj 4·16 = 192, output 10·4 = 40.
  EXPECT_EQ(matmul_parameters(tiny_config()), 232);
  ModelConfig narrow_mlp = tiny_config();
  narrow_mlp.mlp_ratio = 2;
  EXPECT_EQ(matmul_parameters(narrow_mlp), 8 * 16 + 40);
}

TEST(ModelFlops, AttendedKeysHalveUnderTheCausalMask) {
  std::vector<int32_t> lengths = {3, 2};
  EXPECT_DOUBLE_EQ(attended_keys(lengths, AttentionMask::kCausal), (1 + 2 + 3) + (1 + 2));
  EXPECT_DOUBLE_EQ(attended_keys(lengths, AttentionMask::kBidirectional), 3 * 3 + 2 * 2);
}

TEST(ModelFlops, TinyDecoderStepMatchesTheHandCount) {
  std::vector<int32_t> lengths = {3};
  StepFlops flops = train_step_flops(tiny_config(), lengths, AttentionMask::kCausal);
  EXPECT_EQ(flops.tokens, 3);
  EXPECT_DOUBLE_EQ(flops.matmul, 2.0 * 232 * 3);       // 1392
  EXPECT_DOUBLE_EQ(flops.attention, 2.0 * 2 * 4 * 6);  // 96: 2·2·C per attended key, 6 keys
  EXPECT_DOUBLE_EQ(flops.forward(), 1488);
  EXPECT_DOUBLE_EQ(flops.training(), 3 * 1488);
}

TEST(ModelFlops, Gpt2SmallHasItsKnownParameterCount) {
  ModelConfig config = gpt2_small_config();
  EXPECT_EQ(ParameterLayout(config).total_size(), 124'439'808);
  // The total less the position table (1024·768), the biases (9C a layer) and norms (4C a layer,
  // 2C for ln_f).
  EXPECT_EQ(matmul_parameters(config), 124'439'808 - 1024 * 768 - 12 * 13 * 768 - 2 * 768);
}

TEST(ModelFlops, Gpt2SmallPerTokenMatchesPalmWithoutTheCausalHalving) {
  ModelConfig config = gpt2_small_config();
  const double N = double(matmul_parameters(config)), L = 12, T = 1024, C = 768;
  std::vector<int32_t> lengths(8, 1024);
  StepFlops full = train_step_flops(config, lengths, AttentionMask::kBidirectional);
  EXPECT_DOUBLE_EQ(full.training() / full.tokens, 6 * N + 12 * L * T * C);
  StepFlops causal = train_step_flops(config, lengths, AttentionMask::kCausal);
  EXPECT_DOUBLE_EQ(causal.training() / causal.tokens, 6 * N + 6 * L * C * (T + 1));
  // About 0.80 GFLOP per token, 6.5 TFLOP per step of 8 × 1024 tokens.
  EXPECT_NEAR(causal.training(), 6.536e12, 0.001e12);
}

}  // namespace
}  // namespace recforge
