// bf16 mixed precision on the CPU backend, which rounds at the same points as the GPU path: the
// model trains like fp32.
#include <gtest/gtest.h>

#include "tests/support/loss_curve.h"

namespace recforge {
namespace {

using testing::loss_curve;

TEST(MixedPrecision, LossCurveFollowsFp32Over100Steps) {
  const Context cpu = Context::cpu();
  const std::vector<double> fp32 = loss_curve(cpu, Precision::kFp32, 100);
  const std::vector<double> bf16 = loss_curve(cpu, Precision::kBf16, 100);
  const testing::LossCurveGap gap = testing::compare_loss_curves("loss bf16 vs fp32", fp32, bf16);
  EXPECT_GT(gap.max, 0.0) << "bf16 rounded nothing: the mixed path did not run";
  EXPECT_LT(gap.first, 1e-2);
  EXPECT_LT(gap.mean, 3e-2);
  EXPECT_LT(bf16.back(), 0.5 * bf16.front()) << "bf16 did not learn the planted rule";
  EXPECT_LT(gap.last, 0.1);
}

}  // namespace
}  // namespace recforge
