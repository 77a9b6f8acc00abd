// The fused, vocabulary-chunked classifier on the GPU against the CPU backend: several chunks with
// a ragged last one, ignored rows, the gradient accumulating into dwte, the losses-only mode, and
// three weighted targets per row.
#include "kernels/classifier.h"
#include "tests/support/backends.h"

namespace recforge::testing {
namespace {

using ClassifierGpuTest = GpuTest;

constexpr int kRows = 300, kChannels = 64;
constexpr int kVocab = 20000;  // two full 8192-entry chunks and a ragged one

std::vector<int32_t> targets_with_ignored() {
  std::vector<int32_t> targets = random_ints(kRows, 1, 0, kVocab - 1);
  for (int n = 0; n < kRows; n += 7) targets[n] = kIgnoreIndex;
  targets[1] = 0;
  targets[2] = kVocab - 1;
  targets[3] = 8192;  // first entry of the second chunk
  return targets;
}

TEST_F(ClassifierGpuTest, LossesAndGradientsMatchCpu) {
  auto hidden = mirrored(random_floats(static_cast<size_t>(kRows) * kChannels, 2));
  auto wte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 3));
  auto targets = mirrored(targets_with_ignored());
  const float loss_scale = 1.0f / count_targets(targets.cpu.download());
  Mirrored<float> losses(kRows), dhidden(static_cast<size_t>(kRows) * kChannels);
  auto dwte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 4, -1e-3f, 1e-3f));
  losses.poison();
  dhidden.poison();  // overwritten
  for (const Context* ctx : {&cpu_, &cuda_}) {
    classifier_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx), dwte.on(*ctx),
                                hidden.on(*ctx), wte.on(*ctx), targets.on(*ctx), kRows, kChannels,
                                kVocab, loss_scale);
  }
  expect_close("classifier.losses", losses, 1e-5);
  expect_close("classifier.dhidden", dhidden, 1e-4);
  expect_close("classifier.dwte", dwte, 1e-4);
}

TEST_F(ClassifierGpuTest, LossesOnlyMatchCpu) {
  auto hidden = mirrored(random_floats(static_cast<size_t>(kRows) * kChannels, 5));
  auto wte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 6));
  auto targets = mirrored(targets_with_ignored());
  Mirrored<float> losses(kRows);
  losses.poison();
  float* const none = nullptr;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    classifier_forward_backward(*ctx, losses.on(*ctx), none, none, hidden.on(*ctx), wte.on(*ctx),
                                targets.on(*ctx), kRows, kChannels, kVocab, 1.0f);
  }
  expect_close("classifier.losses (losses only)", losses, 1e-5);
}

TEST_F(ClassifierGpuTest, SmallVocabularyMatchesCpu) {
  constexpr int kRowsSmall = 33, kVocabSmall = 100;
  auto hidden = mirrored(random_floats(kRowsSmall * kChannels, 7));
  auto wte = mirrored(random_floats(kVocabSmall * kChannels, 8));
  auto targets = mirrored(random_ints(kRowsSmall, 9, 0, kVocabSmall - 1));
  Mirrored<float> losses(kRowsSmall), dhidden(kRowsSmall * kChannels);
  auto dwte = mirrored(std::vector<float>(kVocabSmall * kChannels, 0.0f));
  losses.poison();
  dhidden.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    classifier_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx), dwte.on(*ctx),
                                hidden.on(*ctx), wte.on(*ctx), targets.on(*ctx), kRowsSmall,
                                kChannels, kVocabSmall, 1.0f / kRowsSmall);
  }
  expect_close("classifier.losses V=100", losses, 1e-5);
  expect_close("classifier.dhidden V=100", dhidden, 1e-4);
  expect_close("classifier.dwte V=100", dwte, 1e-4);
}

TEST_F(ClassifierGpuTest, ThreeWeightedTargetsMatchCpu) {
  constexpr int K = 3;
  const TargetWeights weights{K, {1.0f, 0.5f, 0.25f}};
  auto hidden = mirrored(random_floats(static_cast<size_t>(kRows) * kChannels, 10));
  auto wte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 11));
  std::vector<int32_t> host_targets = random_ints(kRows * K, 12, 0, kVocab - 1);
  for (int i = 0; i < kRows * K; i += 5) host_targets[i] = kIgnoreIndex;
  for (int k = 0; k < K; ++k) host_targets[3 * K + k] = kIgnoreIndex;  // a row without targets
  host_targets[4 * K] = host_targets[4 * K + 2] = 8192;                // one target in two slots
  host_targets[5 * K + 1] = kVocab - 1;
  auto targets = mirrored(host_targets);
  const float loss_scale = 1.0f / count_weighted_targets(host_targets, weights);
  Mirrored<float> losses(kRows), dhidden(static_cast<size_t>(kRows) * kChannels);
  auto dwte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 13, -1e-3f, 1e-3f));
  losses.poison();
  dhidden.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    classifier_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx), dwte.on(*ctx),
                                hidden.on(*ctx), wte.on(*ctx), targets.on(*ctx), weights, kRows,
                                kChannels, kVocab, loss_scale);
  }
  expect_close("classifier.K3.losses", losses, 1e-5);
  expect_close("classifier.K3.dhidden", dhidden, 1e-4);
  expect_close("classifier.K3.dwte", dwte, 1e-4);
}

}  // namespace
}  // namespace recforge::testing
