// The fused, vocabulary-chunked classifier (kernels/classifier.h): losses, the hidden-state
// gradient and the gradient accumulating into the embedding table. The CPU against PyTorch
// (tests/reference/kernels.py) in fp32 and fp64: small and large vocabularies scored as a
// sub-range of the table, ignored rows, the losses-only mode, three weighted targets per row, an
// enclosing parallel region; the weighted targets against single-target calls, and the argument
// checks. The GPU against the CPU backend on the same inputs: several chunks with a ragged last
// one, ignored rows, the losses-only mode, a small vocabulary and three weighted targets per row.
#include "kernels/classifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---- CPU ----

// A case scores the vocabulary sub-range [offset, offset + V) of a table with offset + V + kTail
// rows, K targets per row.
struct Shape {
  int N, C, V, K, offset;
};
constexpr int kTail = 5;
// Vocabularies that are not multiples of 512 (the CUDA kernel's chunk); N not a multiple of the
// CPU kernel's 64-row panel, so the last panel of each thread's range is partial.
constexpr Shape kSmall{300, 64, 1337, 1, 0}, kLarge{203, 128, 12102, 1, 0};
constexpr Shape kMultiSmall{300, 64, 1337, 3, 11}, kMultiLarge{203, 128, 12102, 3, 2};
constexpr TargetWeights kThreeWeights{3, {1.0f, 0.5f, 0.25f}};

int table_rows(const Shape& shape) { return shape.offset + shape.V + kTail; }

// One shape's inputs (drawn as float) and PyTorch reference.
struct ClassifierCase {
  Shape shape;
  TargetWeights weights;
  std::vector<float> hidden, wte, dwte0;  // wte, dwte0 [table_rows, C]; dwte0: before the call
  std::vector<int32_t> targets;           // [N, K], about a tenth are kIgnoreIndex
  double loss_scale = 0.0;                // 1 / count_weighted_targets, as the kernel's float
  std::vector<double> losses, dhidden, dwte;
  std::string label(const char* type) const {
    return std::string("classifier.") + type + ".V" + std::to_string(shape.V) + ".K" +
           std::to_string(shape.K);
  }
};

// Targets [N, K] in [0, V): a tenth ignored, row 0 wholly ignored, row 1 aiming at the last
// (partial-chunk) entry and, with K > 1, row 2 holding one target in two slots.
std::vector<int32_t> make_targets(std::mt19937_64& rng, const Shape& shape) {
  const auto [N, C, V, K, offset] = shape;
  std::vector<int32_t> targets = random_ints(rng, static_cast<size_t>(N) * K, 0, V);
  std::bernoulli_distribution ignored(0.1);
  for (int32_t& t : targets) {
    if (ignored(rng)) t = kIgnoreIndex;
  }
  for (int k = 0; k < K; ++k) targets[k] = kIgnoreIndex;
  targets[K] = V - 1;
  if (K > 1) targets[2 * K + 1] = targets[2 * K] = 17;
  return targets;
}

std::vector<ClassifierCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<ClassifierCase> cases;
  ReferenceCase ref("kernels.py", "classifier");
  for (const Shape& shape : {kSmall, kLarge, kMultiSmall, kMultiLarge}) {
    const auto [N, C, V, K, offset] = shape;
    const size_t table = static_cast<size_t>(table_rows(shape)) * C;
    ClassifierCase c{shape, K == 1 ? TargetWeights{} : kThreeWeights};
    c.hidden = random_normal<float>(rng, N * C);
    c.wte = random_normal<float>(rng, table, 3.0 / std::sqrt(C));
    c.dwte0 = random_normal<float>(rng, table, 0.01);
    c.targets = make_targets(rng, shape);
    c.loss_scale = 1.0f / static_cast<float>(count_weighted_targets(c.targets, c.weights));

    std::string p = case_prefix(cases.size());
    ref.put(p + "hidden", c.hidden, {N, C});
    ref.put(p + "wte", c.wte, {table_rows(shape), C});
    ref.put(p + "dwte0", c.dwte0, {table_rows(shape), C});
    ref.put(p + "targets", c.targets, {N, K});
    ref.put(p + "weights", std::vector<float>(c.weights.w, c.weights.w + K), {K});
    ref.put_scalar(p + "offset", offset);
    ref.put_scalar(p + "V", V);
    ref.put_scalar(p + "loss_scale", c.loss_scale);
    cases.push_back(std::move(c));
  }
  ref.put_scalar("num_cases", cases.size());
  ref.run();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string p = case_prefix(i);
    cases[i].losses = ref.result(p + "losses");
    cases[i].dhidden = ref.result(p + "dhidden");
    cases[i].dwte = ref.result(p + "dwte");
  }
  return cases;
}

// The PyTorch references are computed once and shared by the tests of the suite.
class ClassifierReference : public SharedReferenceCases<ClassifierCase, make_cases> {
 protected:
  // Losses, dhidden (poisoned, overwritten) and dwte (accumulated into dwte0); with
  // `losses_only` dhidden and dwte are null and only the losses are checked.
  // With `nested` the kernel runs inside an enclosing OpenMP parallel region.
  template <typename T>
  void check(const ClassifierCase& c, double tolerance, bool losses_only = false,
             bool nested = false) {
    const auto [N, C, V, K, offset] = c.shape;
    std::vector<T> hidden = convert<T>(c.hidden), wte = convert<T>(c.wte);
    std::vector<T> losses(N, NAN), dhidden(N * C, NAN), dwte = convert<T>(c.dwte0);
    const size_t first = static_cast<size_t>(offset) * C;  // the sub-range's first element
    auto run = [&] {
      classifier_forward_backward(
          Context::cpu(), losses.data(), losses_only ? nullptr : dhidden.data(),
          losses_only ? nullptr : dwte.data() + first, hidden.data(), wte.data() + first,
          c.targets.data(), c.weights, N, C, V, static_cast<T>(c.loss_scale));
    };
    if (nested) {
      run_inside_parallel_region(run);
    } else {
      run();
    }
    std::string label = c.label(type_name<T>()) + (nested ? ".nested" : "");
    if (losses_only) {
      expect_close(label + ".losses (losses only)", losses, c.losses, tolerance);
      return;
    }
    expect_close(label + ".losses", losses, c.losses, tolerance);
    expect_close(label + ".dhidden", dhidden, c.dhidden, tolerance);
    expect_close(label + ".dwte", dwte, c.dwte, tolerance);
  }

  static const ClassifierCase& small() { return (*cases_)[0]; }
  static const ClassifierCase& large() { return (*cases_)[1]; }
  static const ClassifierCase& multi_small() { return (*cases_)[2]; }
  static const ClassifierCase& multi_large() { return (*cases_)[3]; }
};

TEST_F(ClassifierReference, SmallVocabularyMatchesPyTorch) { check<float>(small(), 1e-5); }

TEST_F(ClassifierReference, LargeVocabularyMatchesPyTorch) { check<float>(large(), 1e-5); }

TEST_F(ClassifierReference, LossesOnlyModeMatchesPyTorch) {
  check<float>(small(), 1e-5, /*losses_only=*/true);
  check<float>(large(), 1e-5, /*losses_only=*/true);
}

TEST_F(ClassifierReference, DoublePrecisionMatchesPyTorch) {
  check<double>(small(), 1e-12);
  check<double>(large(), 1e-12);
}

// With fewer threads than omp_get_max_threads() reports (an enclosing parallel region,
// OMP_THREAD_LIMIT, OMP_DYNAMIC) the kernel must still cover every panel and dwte slice.
TEST_F(ClassifierReference, InsideParallelRegionMatchesPyTorch) {
  check<float>(small(), 1e-5, /*losses_only=*/false, /*nested=*/true);
}

TEST_F(ClassifierReference, ThreeWeightedTargetsMatchPyTorch) {
  check<float>(multi_small(), 1e-5);
  check<float>(multi_large(), 1e-5);
}

TEST_F(ClassifierReference, ThreeWeightedTargetsLossesOnlyMatchPyTorch) {
  check<float>(multi_small(), 1e-5, /*losses_only=*/true);
}

TEST_F(ClassifierReference, ThreeWeightedTargetsDoublePrecisionMatchPyTorch) {
  check<double>(multi_small(), 1e-12);
  check<double>(multi_large(), 1e-12);
}

// Row n with targets (t0, t1, t2) and weights (w0, w1, w2) is the sum of three one-target calls,
// call k with targets[:, k] and loss_scale · w_k (losses weighted by w_k afterwards).
TEST(ClassifierMultiTarget, EqualsWeightedSumOfSingleTargetCalls) {
  const int N = 70, C = 16, V = 101, K = 3;
  std::mt19937_64 rng(fresh_seed());
  std::vector<double> hidden = random_normal<double>(rng, N * C);
  std::vector<double> wte = random_normal<double>(rng, V * C, 0.5);
  std::vector<int32_t> targets = make_targets(rng, {N, C, V, K, 0});
  const double loss_scale = 0.01;
  std::vector<double> losses(N), dhidden(N * C), dwte(V * C, 0.0);
  classifier_forward_backward(Context::cpu(), losses.data(), dhidden.data(), dwte.data(),
                              hidden.data(), wte.data(), targets.data(), kThreeWeights, N, C, V,
                              loss_scale);

  std::vector<double> sum_losses(N, 0.0), sum_dhidden(N * C, 0.0), sum_dwte(V * C, 0.0);
  std::vector<double> one_losses(N), one_dhidden(N * C);
  std::vector<int32_t> slot(N);
  for (int k = 0; k < K; ++k) {
    const double w = kThreeWeights.w[k];
    for (int n = 0; n < N; ++n) slot[n] = targets[n * K + k];
    classifier_forward_backward(Context::cpu(), one_losses.data(), one_dhidden.data(),
                                sum_dwte.data(), hidden.data(), wte.data(), slot.data(), N, C, V,
                                loss_scale * w);
    for (int n = 0; n < N; ++n) sum_losses[n] += w * one_losses[n];
    for (int i = 0; i < N * C; ++i) sum_dhidden[i] += one_dhidden[i];
  }
  expect_close("classifier.K3 vs 3 calls.losses", losses, sum_losses, 1e-13);
  expect_close("classifier.K3 vs 3 calls.dhidden", dhidden, sum_dhidden, 1e-13);
  expect_close("classifier.K3 vs 3 calls.dwte", dwte, sum_dwte, 1e-13);
}

TEST(ClassifierMultiTarget, CountWeightedTargetsSumsTheWeightsOfCountedSlots) {
  const std::vector<int32_t> targets{
      4, kIgnoreIndex, 2, kIgnoreIndex, kIgnoreIndex, kIgnoreIndex, 0, 1, 3};
  EXPECT_DOUBLE_EQ(count_weighted_targets(targets, kThreeWeights), 1.25 + 1.75);
  EXPECT_EQ(count_weighted_targets(targets, TargetWeights{}), 5.0);
}

TEST(ClassifierValidation, BadTargetWeightsThrow) {
  const int N = 2, C = 4, V = 7;
  std::vector<float> hidden(N * C, 0.0f), wte(V * C, 0.0f), losses(N);
  std::vector<int32_t> targets(N * kMaxTargets, 0);
  auto run = [&](TargetWeights weights) {
    classifier_forward_backward<float>(Context::cpu(), losses.data(), nullptr, nullptr,
                                       hidden.data(), wte.data(), targets.data(), weights, N, C, V,
                                       1.0f);
  };
  TargetWeights too_many;
  too_many.K = kMaxTargets + 1;
  TargetWeights negative{2, {1.0f, -0.5f}};
  for (const TargetWeights& weights : {too_many, negative}) {
    try {
      run(weights);
      ADD_FAILURE() << "K=" << weights.K << " w1=" << weights.w[1] << " was accepted";
    } catch (const Error& e) {
      std::printf("[  message ] %s\n", e.what());
    }
  }
}

TEST(ClassifierValidation, OutOfRangeTargetThrows) {
  const int N = 2, C = 4, V = 7;
  std::vector<float> hidden(N * C, 0.0f), wte(V * C, 0.0f), losses(N), dhidden(N * C), dwte(V * C);
  std::vector<int32_t> targets{V, 0};
  try {
    classifier_forward_backward(Context::cpu(), losses.data(), dhidden.data(), dwte.data(),
                                hidden.data(), wte.data(), targets.data(), N, C, V, 0.5f);
    ADD_FAILURE() << "target " << V << " was accepted";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
  }
}

// A frozen output layer (LoRA fine-tuning of a language model): dhidden alone, the same as when
// dwte is accumulated too, and the table's gradient untouched.
TEST(ClassifierFrozenTable, HiddenGradientAloneEqualsTheFullBackwards) {
  std::mt19937_64 rng(fresh_seed());
  const int N = 37, C = 32, V = 513;
  const std::vector<float> hidden = random_normal<float>(rng, N * C),
                           wte = random_normal<float>(rng, V * C, 0.1);
  const std::vector<int32_t> targets = random_ints(rng, N, 0, V - 1);
  std::vector<float> losses(N), both(N * C, NAN), alone(N * C, NAN), dwte(V * C, 0.0f);
  classifier_forward_backward(Context::cpu(), losses.data(), both.data(), dwte.data(),
                              hidden.data(), wte.data(), targets.data(), N, C, V, 1.0f / N);
  classifier_forward_backward(Context::cpu(), losses.data(), alone.data(),
                              static_cast<float*>(nullptr), hidden.data(), wte.data(),
                              targets.data(), N, C, V, 1.0f / N);
  EXPECT_TRUE(bitwise_equal(alone, both));
}

// ---- GPU against the CPU ----

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

TEST_F(ClassifierGpuTest, AFrozenTableGivesTheHiddenGradientAlone) {
  auto hidden = mirrored(random_floats(static_cast<size_t>(kRows) * kChannels, 2));
  auto wte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 3));
  auto targets = mirrored(targets_with_ignored());
  Mirrored<float> losses(kRows), dhidden(static_cast<size_t>(kRows) * kChannels);
  losses.poison();
  dhidden.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    classifier_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx),
                                static_cast<float*>(nullptr), hidden.on(*ctx), wte.on(*ctx),
                                targets.on(*ctx), kRows, kChannels, kVocab, 0.01f);
  }
  expect_close("classifier.frozen.dhidden", dhidden, 1e-4);
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
