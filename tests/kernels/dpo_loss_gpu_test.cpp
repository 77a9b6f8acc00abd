// The DPO losses on the GPU against the CPU backend: every loss type for K = 2 and K = 5, with
// and without label smoothing, gradients and metrics; and the null-output modes.
#include "kernels/dpo_loss.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using DpoLossGpuTest = GpuTest;

constexpr DpoLoss kAllLosses[] = {DpoLoss::kSigmoid, DpoLoss::kIpo, DpoLoss::kHinge,
                                  DpoLoss::kRobust, DpoLoss::kSdpo};

TEST_F(DpoLossGpuTest, EveryLossMatchesCpu) {
  constexpr int N = 1000;
  for (int K : {2, 5}) {
    auto reference = mirrored(random_floats(static_cast<size_t>(N) * K, 1, -14.0f, -6.0f));
    std::vector<float> policy_host = reference.cpu.download();
    std::vector<float> shift = random_floats(policy_host.size(), 2, -3.0f, 3.0f);
    for (size_t i = 0; i < shift.size(); ++i) policy_host[i] += shift[i];
    auto policy = mirrored(policy_host);
    for (DpoLoss type : kAllLosses) {
      const bool smoothed = type == DpoLoss::kSigmoid || type == DpoLoss::kRobust;
      const DpoParams params{type, 0.5f, smoothed ? 0.1f : 0.0f};
      Mirrored<float> losses(N), dpolicy(static_cast<size_t>(N) * K);
      Mirrored<float> metrics(static_cast<size_t>(N) * kDpoNumMetrics);
      losses.poison();
      dpolicy.poison();
      metrics.poison();
      for (const Context* ctx : {&cpu_, &cuda_}) {
        dpo_loss(*ctx, losses.on(*ctx), dpolicy.on(*ctx), metrics.on(*ctx), policy.on(*ctx),
                 reference.on(*ctx), N, K, params, 1.0f / N);
      }
      const std::string label = cat("dpo_loss.", dpo_loss_name(type), ".K", K);
      expect_close(label + ".losses", losses, 1e-5);
      expect_close(label + ".dpolicy", dpolicy, 1e-5);
      expect_close(label + ".metrics", metrics, 1e-5);
    }
  }
}

TEST_F(DpoLossGpuTest, LossesOnlyMatchCpu) {
  constexpr int N = 77, K = 3;
  auto policy = mirrored(random_floats(N * K, 3, -10.0f, -1.0f));
  auto reference = mirrored(random_floats(N * K, 4, -10.0f, -1.0f));
  Mirrored<float> losses(N);
  losses.poison();
  float* const none = nullptr;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dpo_loss(*ctx, losses.on(*ctx), none, none, policy.on(*ctx), reference.on(*ctx), N, K,
             DpoParams{DpoLoss::kSdpo, 0.2f, 0.0f}, 1.0f);
  }
  expect_close("dpo_loss.sdpo.losses (losses only)", losses, 1e-5);
}

}  // namespace
}  // namespace recforge::testing
