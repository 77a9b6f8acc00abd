// Softmax cross-entropy over given logits on the GPU against the CPU backend: ignored rows,
// in-place gradient (dlogits aliasing logits) and losses only.
#include "kernels/cross_entropy.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

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
