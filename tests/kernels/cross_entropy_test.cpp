// Softmax cross-entropy over given logits (kernels/cross_entropy.h). The CPU against PyTorch
// (tests/reference/kernels.py) in fp32 and fp64: ignored rows, the gradient separate or in place
// (dlogits aliasing logits) and losses only; its exponential cpu::vexp against std::exp; and its
// target check. The GPU against the CPU backend on the same inputs: ignored rows, in-place gradient
// and losses only.
#include "kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu_math.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---- CPU ----

constexpr int kN = 203, kV = 1031;

struct CrossEntropyData {
  std::vector<float> logits;
  std::vector<int32_t> targets;  // about a fifth are kIgnoreIndex
  double loss_scale = 0.0;       // 1 / count_targets
  std::vector<double> losses, dlogits;
};

CrossEntropyData make_data() {
  std::mt19937_64 rng(fresh_seed());
  CrossEntropyData d;
  d.logits = random_normal<float>(rng, kN * kV, 3.0);
  d.targets = random_ints(rng, kN, 0, kV);
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
      double untouched = relative_error(logits, convert<double>(d.logits));
      report_error(label + ".logits after a losses-only call vs before", untouched);
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
  report_error("vexp worst error over [-87.34, 88.38] (ulp)", worst_ulp);
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

// ---- GPU against the CPU ----

using CrossEntropyGpuTest = GpuTest;

constexpr int kRows = 200, kVocab = 5001;

// Random targets with every fifth row ignored.
std::vector<int32_t> targets_with_ignored() {
  std::vector<int32_t> targets = random_ints(kRows, 1, 0, kVocab - 1);
  for (int n = 0; n < kRows; n += 5) targets[n] = kIgnoreIndex;
  return targets;
}

TEST_F(CrossEntropyGpuTest, LossesAndGradientMatchCpu) {
  auto logits = mirrored(random_floats(static_cast<size_t>(kRows) * kVocab, 2, -8.0f, 8.0f));
  auto targets = mirrored(targets_with_ignored());
  const float loss_scale = 1.0f / count_targets(targets.cpu.download());
  Mirrored<float> losses(kRows), dlogits(static_cast<size_t>(kRows) * kVocab);
  losses.poison();
  dlogits.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    softmax_cross_entropy(*ctx, losses.on(*ctx), dlogits.on(*ctx), logits.on(*ctx),
                          targets.on(*ctx), kRows, kVocab, loss_scale);
  }
  expect_close("cross_entropy.losses", losses, 1e-5);
  expect_close("cross_entropy.dlogits", dlogits, 1e-5);
  std::vector<float> gpu_losses = losses.cuda.download();
  for (int n = 0; n < kRows; n += 5) EXPECT_EQ(gpu_losses[n], 0.0f) << "ignored row " << n;
}

TEST_F(CrossEntropyGpuTest, InPlaceGradientAndLossesOnly) {
  auto logits = mirrored(random_floats(static_cast<size_t>(kRows) * kVocab, 3, -8.0f, 8.0f));
  auto targets = mirrored(targets_with_ignored());
  Mirrored<float> losses(kRows), losses_only(kRows);
  losses.poison();
  losses_only.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    softmax_cross_entropy(*ctx, losses_only.on(*ctx), static_cast<float*>(nullptr), logits.on(*ctx),
                          targets.on(*ctx), kRows, kVocab, 0.5f);
    softmax_cross_entropy(*ctx, losses.on(*ctx), logits.on(*ctx), logits.on(*ctx), targets.on(*ctx),
                          kRows, kVocab, 0.5f);
  }
  expect_close("cross_entropy.losses (losses only)", losses_only, 1e-5);
  expect_close("cross_entropy.losses (in place)", losses, 1e-5);
  expect_close("cross_entropy.dlogits (in place)", logits, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
