// The AdamW update with a decayed prefix and an undecayed rest of the buffer: the CPU backend
// against torch.optim.AdamW over several steps (tests/reference/kernels.py), with and without a
// gradient scale; the CUDA backend against the CPU backend over several steps, with and without
// weight decay.
#include "kernels/adamw.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

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
  std::mt19937_64 rng(fresh_seed());
  std::vector<AdamWCase> cases;
  ReferenceCase ref("kernels.py", "adamw");
  for (float grad_scale : {1.0f, 0.37f}) {
    AdamWCase c{grad_scale, grad_scale == 1.0f ? "adamw" : "adamw.grad_scale=0.37"};
    c.params = random_normal<float>(rng, kN);
    c.grads = random_normal<float>(rng, kSteps * kN, 3.0);
    std::string p = case_prefix(cases.size());
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
    std::string p = case_prefix(i);
    cases[i].ref_params = ref.result(p + "params");
    cases[i].ref_m = ref.result(p + "m");
    cases[i].ref_v = ref.result(p + "v");
  }
  return cases;
}

// The torch.optim.AdamW references are computed once and shared by the tests of the suite.
class AdamWReference : public SharedReferenceCases<AdamWCase, make_cases> {
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

using AdamWGpuTest = GpuTest;

TEST_F(AdamWGpuTest, SeveralStepsMatchCpu) {
  constexpr int64_t kSize = 300'001, kDecayed = 200'000;
  const AdamWConfig config{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
  auto params = mirrored(random_floats(kSize, 1));
  auto m = mirrored(std::vector<float>(kSize, 0.0f));
  auto v = mirrored(std::vector<float>(kSize, 0.0f));
  for (int step = 1; step <= 5; ++step) {
    auto grads = mirrored(random_floats(kSize, 100 + step));
    for (const Context* ctx : {&cpu_, &cuda_}) {
      adamw_update(*ctx, params.on(*ctx), grads.on(*ctx), m.on(*ctx), v.on(*ctx), kSize, kDecayed,
                   config, step, 0.5f);
    }
  }
  expect_close("adamw.params", params, 1e-5);
  expect_close("adamw.m", m, 1e-5);
  expect_close("adamw.v", v, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
