// bf16 mixed precision on the CPU backend, which rounds at the same points as the GPU path: the
// model trains like fp32, and the configuration refuses what bf16 cannot run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "tests/support/loss_curve.h"

namespace recforge {
namespace {

using testing::loss_curve;

TEST(MixedPrecision, LossCurveFollowsFp32Over100Steps) {
  const Context cpu = Context::cpu();
  const std::vector<double> fp32 = loss_curve(cpu, Precision::kFp32, 100);
  const std::vector<double> bf16 = loss_curve(cpu, Precision::kBf16, 100);
  double largest = 0.0, sum = 0.0;
  for (size_t step = 0; step < fp32.size(); ++step) {
    const double difference = std::abs(bf16[step] - fp32[step]) / fp32[step];
    largest = std::max(largest, difference);
    sum += difference;
  }
  std::cout << "[ rel_err ] loss bf16 vs fp32: first " << std::abs(bf16[0] - fp32[0]) / fp32[0]
            << ", mean " << sum / fp32.size() << ", max " << largest << "; fp32 " << fp32.front()
            << " → " << fp32.back() << ", bf16 " << bf16.front() << " → " << bf16.back()
            << std::endl;
  EXPECT_GT(largest, 0.0) << "bf16 rounded nothing: the mixed path did not run";
  EXPECT_LT(std::abs(bf16[0] - fp32[0]) / fp32[0], 1e-2);
  EXPECT_LT(sum / fp32.size(), 3e-2);
  EXPECT_LT(bf16.back(), 0.5 * bf16.front()) << "bf16 did not learn the planted rule";
  EXPECT_LT(std::abs(bf16.back() - fp32.back()) / fp32.back(), 0.1);
}

}  // namespace
}  // namespace recforge
