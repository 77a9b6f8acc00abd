#include "kernels/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::expect_close;
using testing::ReferenceCase;

constexpr int64_t kN = 10001, kNumDecayed = 6007;  // the decayed prefix ends mid-buffer
constexpr int kSteps = 5;
constexpr AdamWConfig kConfig{/*lr=*/1e-2f, /*beta1=*/0.85f, /*beta2=*/0.97f, /*eps=*/1e-6f,
                              /*weight_decay=*/0.1f};

// One run of kSteps updates from the same start, with a fresh gradient each step.
struct AdamWCase {
  float grad_scale;
  std::string label;
  std::vector<float> params, grads;  // grads [kSteps, kN]
  std::vector<double> ref_params, ref_m, ref_v;
};

std::vector<AdamWCase> make_cases() {
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<AdamWCase> cases;
  ReferenceCase ref("kernels.py", "adamw");
  for (float grad_scale : {1.0f, 0.37f}) {
    AdamWCase c{grad_scale, grad_scale == 1.0f ? "adamw" : "adamw.grad_scale=0.37"};
    c.params = testing::random_normal<float>(rng, kN);
    c.grads = testing::random_normal<float>(rng, kSteps * kN, 3.0);
    std::string p = testing::case_prefix(cases.size());
    ref.put(p + "params", c.params, {kN});
    ref.put(p + "grads", c.grads, {kSteps, kN});
    ref.put_scalar(p + "num_decayed", kNumDecayed);
    ref.put_scalar(p + "grad_scale", grad_scale);
    ref.put_scalar(p + "lr", kConfig.lr);
    ref.put_scalar(p + "beta1", kConfig.beta1);
    ref.put_scalar(p + "beta2", kConfig.beta2);
    ref.put_scalar(p + "eps", kConfig.eps);
    ref.put_scalar(p + "weight_decay", kConfig.weight_decay);
    cases.push_back(std::move(c));
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = testing::case_prefix(i);
    cases[i].ref_params = ref.result(p + "params");
    cases[i].ref_m = ref.result(p + "m");
    cases[i].ref_v = ref.result(p + "v");
  }
  return cases;
}

// The torch.optim.AdamW references are computed once and shared by the tests of the suite.
class AdamWReference : public testing::SharedReferenceCases<AdamWCase, make_cases> {
 protected:
  static void check(const AdamWCase& c, double tolerance) {
    std::vector<float> params = c.params, m(kN, 0.0f), v(kN, 0.0f);
    Context ctx = Context::cpu();
    for (int step = 1; step <= kSteps; ++step) {
      adamw_update(ctx, params.data(), c.grads.data() + (step - 1) * kN, m.data(), v.data(), kN,
                   kNumDecayed, kConfig, step, c.grad_scale);
    }
    expect_close(c.label + ".params", params, c.ref_params, tolerance);
    expect_close(c.label + ".m", m, c.ref_m, tolerance);
    expect_close(c.label + ".v", v, c.ref_v, tolerance);
  }
};

TEST_F(AdamWReference, FiveStepsMatchTorchAdamWWithDecayAndNoDecayGroups) {
  check((*cases_)[0], 1e-6);
}

TEST_F(AdamWReference, GradScaleMatchesTorchAdamWOnScaledGradients) { check((*cases_)[1], 1e-6); }

}  // namespace
}  // namespace recforge
