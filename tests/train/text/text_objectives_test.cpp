// The text objectives on a tiny Llama model: the SFT loss lives on answer tokens only, packing
// changes neither the loss nor the gradients, and DPO starts from zero margins.
#include "train/text/text_objectives.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cross_entropy.h"
#include "tests/train/text/tiny_text_model.h"

namespace recforge {
namespace {

constexpr int32_t kEnd = 7;

class TextObjectivesTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng_{testing::fresh_seed()};
};

TEST_F(TextObjectivesTest, SftGradientIsZeroOnPromptRowsAndNotOnAnswerRows) {
  const testing::TinyTextModel tiny(rng_, false);
  auto model = tiny.build();
  const auto batches = sft_batches(testing::random_text_examples(rng_, 3, 2), kEnd, 8, 512);
  ASSERT_EQ(batches.size(), 1u);
  const PackedBatch& host = batches[0].host;
  const DeviceBatch batch(Device::kCpu, host, tiny.config.batch_limits());
  model->forward(batch);
  const std::vector<double> weights(host.num_sequences(), 1.0 / batches[0].answer_tokens);
  model->weighted_sequence_loss(batch, host, weights, true);
  const int C = tiny.config.d_model;
  for (int n = 0; n < host.num_tokens(); ++n) {
    double norm = 0.0;
    for (int c = 0; c < C; ++c) norm += std::abs(model->hidden_gradient()[n * C + c]);
    if (host.targets[n] == kIgnoreIndex) {
      EXPECT_EQ(norm, 0.0) << "prompt row " << n;
    } else {
      EXPECT_GT(norm, 0.0) << "answer row " << n;
    }
  }
}

TEST_F(TextObjectivesTest, PackedExamplesGiveTheLossAndGradientsOfOneAtATime) {
  const testing::TinyTextModel tiny(rng_, false);
  const auto examples = testing::random_text_examples(rng_, 4, 3);
  const auto packed = sft_batches(examples, kEnd, 8, 512);
  const auto single = sft_batches(examples, kEnd, 1, 512);
  ASSERT_EQ(packed.size(), 1u);
  ASSERT_EQ(single.size(), 4u);
  const double tokens = static_cast<double>(packed[0].answer_tokens);
  const SftOptions options{false, 0};

  auto model = tiny.build();
  model->zero_gradients();
  const double packed_loss = sft_forward_backward(*model, packed[0], tokens, options, true);
  const std::vector<float> packed_grad = model->adapter_gradients().download();

  model->zero_gradients();
  double single_loss = 0.0;
  for (size_t i = 0; i < single.size(); ++i) {
    single_loss += sft_forward_backward(*model, single[i], tokens, options, i + 1 == single.size());
  }
  const std::vector<float> single_grad = model->adapter_gradients().download();
  EXPECT_NEAR(single_loss, packed_loss, 1e-6 * packed_loss);
  const std::vector<double> reference(single_grad.begin(), single_grad.end());
  const double error = testing::relative_error(packed_grad, reference);
  testing::report_error("text.sft.packed_vs_single.grad", error);
  EXPECT_LT(error, 1e-5);
}

struct DpoStartCase {
  DpoLoss loss;
  int answers;
  double expected_loss;  // policy = reference: sigmoid log 2, S-DPO log(K − 1) + log(1 + 1/(K − 1))
};

class DpoAtStepZeroTest : public TextObjectivesTest,
                          public ::testing::WithParamInterface<DpoStartCase> {};

TEST_P(DpoAtStepZeroTest, HasZeroMarginsAndRewardsWithFreshAdapters) {
  const testing::TinyTextModel tiny(rng_, true);
  auto model = tiny.build();
  const int K = GetParam().answers;
  const auto batches = dpo_batches(testing::random_text_examples(rng_, 5, K), K - 1, 1, 8, 512);
  ASSERT_EQ(batches.size(), 1u);
  const std::vector<double> reference = answer_log_probs(*model, batches[0]);
  model->zero_gradients();
  const DpoSums sums = dpo_forward_backward(*model, batches[0], reference,
                                            {GetParam().loss, 0.1f, 0.0f}, 1.0 / 5, true);
  EXPECT_EQ(sums.examples, 5);
  EXPECT_EQ(sums.margin, 0.0);
  EXPECT_EQ(sums.chosen_reward, 0.0);
  EXPECT_EQ(sums.rejected_reward, 0.0);
  EXPECT_NEAR(sums.loss / sums.examples, GetParam().expected_loss, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Losses, DpoAtStepZeroTest,
                         ::testing::Values(DpoStartCase{DpoLoss::kSigmoid, 2, std::log(2.0)},
                                           DpoStartCase{DpoLoss::kSigmoid, 4, std::log(2.0)},
                                           DpoStartCase{DpoLoss::kSdpo, 4, std::log(4.0)}),
                         [](const auto& info) {
                           return dpo_loss_name(info.param.loss) +
                                  std::to_string(info.param.answers);
                         });

}  // namespace
}  // namespace recforge
