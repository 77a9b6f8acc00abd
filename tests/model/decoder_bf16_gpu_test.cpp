// The bf16 decoder on the GPU against the CPU backend's bf16 emulation (same rounding points) and
// against fp32: a few AdamW steps, then a 100-step loss curve.
#include "tests/model/decoder_steps.h"
#include "tests/support/loss_curve.h"

namespace recforge::testing {
namespace {

class DecoderBf16GpuTest : public GpuTest {};

TEST_F(DecoderBf16GpuTest, StepsMatchTheCpuBf16Backend) {
  const ModelConfig config = testing::loss_curve_config(Precision::kBf16);
  const PackedBatch host = testing::planted_rule_batch(0);
  const StepsRun cpu = run_adamw_steps(cpu_, config, host, AttentionMask::kCausal, 3);
  const StepsRun gpu = run_adamw_steps(cuda_, config, host, AttentionMask::kCausal, 3);
  expect_steps_close("decoder.bf16", gpu, cpu,
                     {.loss = 1e-3, .gradients = 2e-2, .parameters = 1e-3});
}

TEST_F(DecoderBf16GpuTest, LossCurveFollowsFp32Over100Steps) {
  const std::vector<double> fp32 = testing::loss_curve(cpu_, Precision::kFp32, 100);
  const std::vector<double> bf16 = testing::loss_curve(cuda_, Precision::kBf16, 100);
  const testing::LossCurveGap gap =
      testing::compare_loss_curves("loss cuda bf16 vs cpu fp32", fp32, bf16);
  EXPECT_LT(gap.first, 1e-2);
  EXPECT_LT(gap.mean, 3e-2);
  EXPECT_LT(bf16.back(), 0.5 * bf16.front());
  EXPECT_LT(gap.last, 0.1);
}

}  // namespace
}  // namespace recforge::testing
