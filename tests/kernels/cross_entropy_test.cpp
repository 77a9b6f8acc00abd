#include "kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include "kernels/cpu_math.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::type_name;

constexpr int kN = 203, kV = 1031;

struct CrossEntropyData {
  std::vector<float> logits;
  std::vector<int32_t> targets;  // about a fifth are kIgnoreIndex
  double loss_scale = 0.0;       // 1 / count_targets
  std::vector<double> losses, dlogits;
};

CrossEntropyData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  CrossEntropyData d;
  d.logits = testing::random_normal<float>(rng, kN * kV, 3.0);
  d.targets = testing::random_ints(rng, kN, 0, kV);
  std::bernoulli_distribution ignored(0.2);
  for (int32_t& t : d.targets) {
    if (ignored(rng)) t = kIgnoreIndex;
  }
  d.targets[0] = kIgnoreIndex;
  d.targets[1] = 0;
  d.targets[2] = kV - 1;
  d.loss_scale = 1.0f / static_cast<float>(count_targets(d.targets));  // the kernel's float value
  ReferenceCase ref("kernels.py", "cross_entropy");
  ref.put("logits", d.logits, {kN, kV});
  ref.put("targets", d.targets, {kN});
  ref.put_scalar("loss_scale", d.loss_scale);
  ref.run();
  d.losses = ref.result("losses");
  d.dlogits = ref.result("dlogits");
  return d;
}

enum class Gradient { kSeparate, kInPlace, kNone };

// The PyTorch reference is computed once and shared by the tests of the suite.
class CrossEntropyReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<CrossEntropyData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }

  template <typename T>
  void check(Gradient gradient, double tolerance) {
    const CrossEntropyData& d = *data_;
    std::vector<T> logits = convert<T>(d.logits), losses(kN, NAN), dlogits(kN * kV, NAN);
    T* grad = gradient == Gradient::kSeparate  ? dlogits.data()
              : gradient == Gradient::kInPlace ? logits.data()
                                               : nullptr;
    softmax_cross_entropy(Context::cpu(), losses.data(), grad, logits.data(), d.targets.data(), kN,
                          kV, static_cast<T>(d.loss_scale));
    const char* mode = gradient == Gradient::kSeparate  ? ""
                       : gradient == Gradient::kInPlace ? " (in place)"
                                                        : " (losses only)";
    std::string label = std::string("cross_entropy.") + type_name<T>();
    expect_close(label + ".losses" + mode, losses, d.losses, tolerance);
    if (gradient == Gradient::kSeparate)
      expect_close(label + ".dlogits", dlogits, d.dlogits, tolerance);
    if (gradient == Gradient::kInPlace) {
      expect_close(label + ".dlogits" + mode, logits, d.dlogits, tolerance);
    }
    if (gradient == Gradient::kNone) {
      double untouched = testing::relative_error(logits, convert<double>(d.logits));
      testing::report_error(label + ".logits after a losses-only call vs before", untouched);
      EXPECT_EQ(untouched, 0.0);
    }
  }

  static inline std::unique_ptr<CrossEntropyData> data_;
};

TEST_F(CrossEntropyReference, LossesAndGradientMatchPyTorch) {
  check<float>(Gradient::kSeparate, 1e-6);
}

TEST_F(CrossEntropyReference, InPlaceGradientMatchesPyTorch) {
  check<float>(Gradient::kInPlace, 1e-6);
}

TEST_F(CrossEntropyReference, NullGradientComputesLossesOnly) {
  check<float>(Gradient::kNone, 1e-6);
}

TEST_F(CrossEntropyReference, DoublePrecisionMatchesPyTorch) {
  check<double>(Gradient::kSeparate, 1e-13);
}

// cpu::vexp, the exponential of the CPU cross-entropy and classifier, against std::exp in double:
// within 2 ulp (of the float result) over its range, and exactly 0 below it, −∞ included.
TEST(CpuVexp, WithinTwoUlpOfStdExp) {
  const float low = -87.33654f, high = 88.37626f;
  const int steps = 1 << 21;
  double worst_ulp = 0.0;
  for (int i = 0; i <= steps; ++i) {
    float x = low + (high - low) * (static_cast<float>(i) / steps);
    double exact = std::exp(static_cast<double>(x));
    float rounded = static_cast<float>(exact);
    double ulp = std::nextafter(rounded, std::numeric_limits<float>::infinity()) - rounded;
    worst_ulp = std::max(worst_ulp, std::abs(cpu::vexp(x) - exact) / ulp);
  }
  testing::report_error("vexp worst error over [-87.34, 88.38] (ulp)", worst_ulp);
  EXPECT_LE(worst_ulp, 2.0);
  EXPECT_EQ(cpu::vexp(0.0f), 1.0f);
  EXPECT_EQ(cpu::vexp(-87.5f), 0.0f);
  EXPECT_EQ(cpu::vexp(-std::numeric_limits<float>::infinity()), 0.0f);
}

TEST(CrossEntropyValidation, OutOfRangeTargetThrows) {
  const int N = 3, V = 5;
  std::vector<float> logits(N * V, 0.0f), losses(N), dlogits(N * V);
  for (int32_t bad : {V, -2}) {
    std::vector<int32_t> targets{1, bad, kIgnoreIndex};
    try {
      softmax_cross_entropy(Context::cpu(), losses.data(), dlogits.data(), logits.data(),
                            targets.data(), N, V, 1.0f);
      ADD_FAILURE() << "target " << bad << " was accepted";
    } catch (const Error& e) {
      std::printf("[  message ] %s\n", e.what());
    }
  }
}

}  // namespace
}  // namespace recforge
