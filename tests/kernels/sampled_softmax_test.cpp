// Sampled softmax with logQ correction (kernels/sampled_softmax.h). The CPU backend against
// PyTorch (few and many shared negatives, the losses-only mode, float and double), against the full
// softmax cross-entropy of the classifier when every item is a negative, and its argument checks;
// the CUDA backend against the CPU backend: logQ correction, τ ≠ 1, duplicated negatives and
// negatives equal to rows' positives, ignored rows, the gradient accumulating into dwte, the
// losses-only mode, several row chunks, and bitwise-reproducible table gradients.
#include "kernels/sampled_softmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/classifier.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---- The CPU backend against PyTorch ------------------------------------------------------------

// A case scores the vocabulary sub-range [offset, offset + V) of a table with offset + V + kTail
// rows against P shared negatives.
struct Shape {
  int N, C, V, P, offset;
  double temperature;
};
constexpr int kTail = 5;
// N not a multiple of the CPU kernel's panel rows; P not a power of two.
constexpr Shape kSmall{300, 64, 1000, 127, 7, 0.7}, kLarge{203, 128, 5000, 1000, 2, 1.3};

int table_rows(const Shape& shape) { return shape.offset + shape.V + kTail; }

// Inputs drawn as float (exact in double) and the PyTorch reference.
struct SampledCase {
  Shape shape;
  std::vector<float> hidden, wte, dwte0;  // wte, dwte0 [table_rows, C]; dwte0: before the call
  std::vector<int32_t> positives;         // [N], about a tenth kIgnoreIndex
  std::vector<int32_t> negatives;         // [P], with duplicates and some rows' positives
  std::vector<float> log_q_positive;      // [N]
  std::vector<float> log_q_negative;      // [P]
  double loss_scale = 0.0;                // 1 / counted rows, as the kernel's float
  std::vector<double> losses, dhidden, dwte;
  std::string label(const char* type) const {
    return std::string("sampled_softmax.") + type + ".P" + std::to_string(shape.P);
  }
};

// log of a sampling probability in [1e-4, 1e-2].
std::vector<float> random_log_q(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<double> probability(1e-4, 1e-2);
  std::vector<float> out(n);
  for (float& x : out) x = static_cast<float>(std::log(probability(rng)));
  return out;
}

SampledCase make_case(std::mt19937_64& rng, const Shape& shape) {
  const auto [N, C, V, P, offset, temperature] = shape;
  const size_t table = static_cast<size_t>(table_rows(shape)) * C;
  SampledCase c{shape};
  c.hidden = random_normal<float>(rng, N * C);
  c.wte = random_normal<float>(rng, table, 3.0 / std::sqrt(C));
  c.dwte0 = random_normal<float>(rng, table, 0.01);
  c.positives = random_ints(rng, N, 0, V);
  std::bernoulli_distribution ignored(0.1);
  for (int32_t& p : c.positives) {
    if (ignored(rng)) p = kIgnoreIndex;
  }
  c.negatives = random_ints(rng, P, 0, V);
  c.positives[0] = kIgnoreIndex;
  c.negatives[5] = c.negatives[4];  // a duplicated negative ...
  c.positives[1] = c.negatives[4];  // ... that is row 1's positive: both copies are removed
  c.positives[2] = c.negatives[10];
  c.positives[3] = c.negatives[10];  // two rows share a positive that is also a negative
  c.negatives[P - 1] = V - 1;
  c.log_q_positive = random_log_q(rng, N);
  c.log_q_negative = random_log_q(rng, P);
  c.loss_scale = 1.0f / static_cast<float>(count_targets(c.positives));
  return c;
}

std::vector<SampledCase> make_cases() {
  std::mt19937_64 rng(fresh_seed());
  std::vector<SampledCase> cases;
  ReferenceCase ref("kernels.py", "sampled_softmax");
  for (const Shape& shape : {kSmall, kLarge}) {
    SampledCase c = make_case(rng, shape);
    const auto [N, C, V, P, offset, temperature] = shape;
    std::string p = case_prefix(cases.size());
    ref.put(p + "hidden", c.hidden, {N, C});
    ref.put(p + "wte", c.wte, {table_rows(shape), C});
    ref.put(p + "dwte0", c.dwte0, {table_rows(shape), C});
    ref.put(p + "positives", c.positives, {N});
    ref.put(p + "negatives", c.negatives, {P});
    ref.put(p + "log_q_positive", c.log_q_positive, {N});
    ref.put(p + "log_q_negative", c.log_q_negative, {P});
    ref.put_scalar(p + "offset", offset);
    ref.put_scalar(p + "V", V);
    ref.put_scalar(p + "temperature", temperature);
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
class SampledSoftmaxReference : public SharedReferenceCases<SampledCase, make_cases> {
 protected:
  // Losses, dhidden (poisoned, overwritten) and dwte (accumulated into dwte0, the sub-range at
  // the case's offset); with `losses_only` dhidden and dwte are null and only the losses are
  // checked. With `nested` the kernel runs inside an enclosing OpenMP parallel region.
  template <typename T>
  void check(const SampledCase& c, double tolerance, bool losses_only = false,
             bool nested = false) {
    const auto [N, C, V, P, offset, temperature] = c.shape;
    std::vector<T> hidden = convert<T>(c.hidden), wte = convert<T>(c.wte);
    std::vector<T> log_q_positive = convert<T>(c.log_q_positive);
    std::vector<T> log_q_negative = convert<T>(c.log_q_negative);
    std::vector<T> losses(N, NAN), dhidden(N * C, NAN), dwte = convert<T>(c.dwte0);
    const size_t first = static_cast<size_t>(offset) * C;  // the sub-range's first element
    SampledSoftmaxInputs<T> in{hidden.data(),
                               wte.data() + first,
                               c.positives.data(),
                               c.negatives.data(),
                               log_q_positive.data(),
                               log_q_negative.data(),
                               N,
                               C,
                               V,
                               P,
                               static_cast<T>(temperature)};
    auto run = [&] {
      sampled_softmax_forward_backward(
          Context::cpu(), losses.data(), losses_only ? nullptr : dhidden.data(),
          losses_only ? nullptr : dwte.data() + first, in, static_cast<T>(c.loss_scale));
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

  static const SampledCase& small() { return (*cases_)[0]; }
  static const SampledCase& large() { return (*cases_)[1]; }
};

TEST_F(SampledSoftmaxReference, FewNegativesMatchPyTorch) { check<float>(small(), 1e-5); }

TEST_F(SampledSoftmaxReference, ManyNegativesMatchPyTorch) { check<float>(large(), 1e-5); }

TEST_F(SampledSoftmaxReference, LossesOnlyModeMatchesPyTorch) {
  check<float>(small(), 1e-5, /*losses_only=*/true);
  check<float>(large(), 1e-5, /*losses_only=*/true);
}

TEST_F(SampledSoftmaxReference, DoublePrecisionMatchesPyTorch) {
  check<double>(small(), 1e-12);
  check<double>(large(), 1e-12);
}

TEST_F(SampledSoftmaxReference, InsideParallelRegionMatchesPyTorch) {
  check<float>(small(), 1e-5, /*losses_only=*/false, /*nested=*/true);
}

// ---- The CPU backend's invariants and argument checks -------------------------------------------

// Every item as a negative (shuffled), a uniform logQ and τ = 1: each row's positive is among the
// negatives and removed, so the candidates are exactly the V items and the op is the full
// softmax cross-entropy of the classifier.
template <typename T>
void check_full_softmax_limit(double tolerance) {
  const int N = 150, C = 32, V = 500;
  std::mt19937_64 rng(fresh_seed());
  std::vector<T> hidden = random_normal<T>(rng, N * C);
  std::vector<T> wte = random_normal<T>(rng, V * C, 0.5);
  std::vector<int32_t> positives = random_ints(rng, N, 0, V);
  for (int n = 0; n < N; n += 9) positives[n] = kIgnoreIndex;
  std::vector<int32_t> negatives(V);
  std::iota(negatives.begin(), negatives.end(), 0);
  std::shuffle(negatives.begin(), negatives.end(), rng);
  const T log_q = std::log(T(1) / V);
  std::vector<T> log_q_positive(N, log_q), log_q_negative(V, log_q);
  const T loss_scale = T(1) / static_cast<T>(count_targets(positives));

  std::vector<T> losses(N), dhidden(N * C), dwte(V * C, T(0));
  SampledSoftmaxInputs<T> in{hidden.data(),
                             wte.data(),
                             positives.data(),
                             negatives.data(),
                             log_q_positive.data(),
                             log_q_negative.data(),
                             N,
                             C,
                             V,
                             V,
                             T(1)};
  sampled_softmax_forward_backward(Context::cpu(), losses.data(), dhidden.data(), dwte.data(), in,
                                   loss_scale);
  std::vector<T> full_losses(N), full_dhidden(N * C), full_dwte(V * C, T(0));
  classifier_forward_backward(Context::cpu(), full_losses.data(), full_dhidden.data(),
                              full_dwte.data(), hidden.data(), wte.data(), positives.data(), N, C,
                              V, loss_scale);
  std::string label = std::string("sampled_softmax.") + type_name<T>() + ".all items vs full";
  expect_close(label + ".losses", losses, convert<double>(full_losses), tolerance);
  expect_close(label + ".dhidden", dhidden, convert<double>(full_dhidden), tolerance);
  expect_close(label + ".dwte", dwte, convert<double>(full_dwte), tolerance);
}

// What the float and the double runs of the limit differ in.
template <typename T>
struct LimitTraits;

template <>
struct LimitTraits<float> {
  static constexpr const char* kName = "Float";
  static constexpr double kTolerance = 1e-5;
};

template <>
struct LimitTraits<double> {
  static constexpr const char* kName = "Double";
  static constexpr double kTolerance = 1e-12;
};

// Test names: SampledSoftmaxLimit/Float, SampledSoftmaxLimit/Double.
struct LimitTypeName {
  template <typename T>
  static std::string GetName(int) {
    return LimitTraits<T>::kName;
  }
};

template <typename T>
class SampledSoftmaxLimit : public ::testing::Test {};

using FloatAndDouble = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SampledSoftmaxLimit, FloatAndDouble, LimitTypeName);

TYPED_TEST(SampledSoftmaxLimit, EveryItemAsNegativeEqualsFullSoftmax) {
  check_full_softmax_limit<TypeParam>(LimitTraits<TypeParam>::kTolerance);
}

// A call with hidden [2, 4], V = 7, P = 2; `edit` spoils one input.
template <typename Edit>
void expect_rejected(const char* what, Edit edit) {
  const int N = 2, C = 4, V = 7, P = 2;
  std::vector<float> hidden(N * C, 0.0f), wte(V * C, 0.0f), log_q(N + P, 0.0f), losses(N);
  std::vector<float> dhidden(N * C), dwte(V * C);
  std::vector<int32_t> positives{1, 2}, negatives{3, 4};
  SampledSoftmaxInputs<float> in{hidden.data(),
                                 wte.data(),
                                 positives.data(),
                                 negatives.data(),
                                 log_q.data(),
                                 log_q.data(),
                                 N,
                                 C,
                                 V,
                                 P,
                                 1.0f};
  edit(in, positives, negatives);
  try {
    sampled_softmax_forward_backward(Context::cpu(), losses.data(), dhidden.data(), dwte.data(), in,
                                     1.0f);
    ADD_FAILURE() << what << " was accepted";
  } catch (const Error& e) {
    std::printf("[  message ] %s\n", e.what());
  }
}

TEST(SampledSoftmaxValidation, OutOfRangeIndicesThrow) {
  expect_rejected("negative 7 with V = 7",
                  [](auto&, auto&, std::vector<int32_t>& negatives) { negatives[1] = 7; });
  expect_rejected("positive -2",
                  [](auto&, std::vector<int32_t>& positives, auto&) { positives[0] = -2; });
}

TEST(SampledSoftmaxValidation, NonPositiveTemperatureThrows) {
  expect_rejected("temperature 0",
                  [](SampledSoftmaxInputs<float>& in, auto&, auto&) { in.temperature = 0.0f; });
}

// ---- The CUDA backend against the CPU backend ---------------------------------------------------

using SampledSoftmaxGpuTest = GpuTest;

constexpr int kChannels = 64, kVocab = 5000;

// One problem's inputs on both backends.
struct Problem {
  int N, P;
  Mirrored<float> hidden, wte, log_q_positive, log_q_negative;
  Mirrored<int32_t> positives, negatives;
  float loss_scale;

  Problem(int rows, int negatives_count, uint32_t seed)
      : N(rows),
        P(negatives_count),
        hidden(mirrored(random_floats(static_cast<size_t>(rows) * kChannels, seed))),
        wte(mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, seed + 1))),
        log_q_positive(mirrored(random_floats(rows, seed + 2, -9.0f, -4.0f))),
        log_q_negative(mirrored(random_floats(negatives_count, seed + 3, -9.0f, -4.0f))),
        positives(mirrored(positives_with_ignored(rows, seed + 4))),
        negatives(mirrored(shared_negatives(negatives_count, seed + 5))),
        loss_scale(1.0f / count_targets(positives.cpu.download())) {}

  static std::vector<int32_t> positives_with_ignored(int rows, uint32_t seed) {
    std::vector<int32_t> positives = random_ints(rows, seed, 0, kVocab - 1);
    for (int n = 0; n < rows; n += 7) positives[n] = kIgnoreIndex;
    positives[1] = positives[2] = 11;  // also negatives 0 and 1
    positives[3] = kVocab - 1;
    return positives;
  }
  static std::vector<int32_t> shared_negatives(int count, uint32_t seed) {
    std::vector<int32_t> negatives = random_ints(count, seed, 0, kVocab - 1);
    negatives[0] = negatives[1] = 11;  // duplicated, and rows 1 and 2's positive
    negatives[2] = kVocab - 1;
    return negatives;
  }

  SampledSoftmaxInputs<float> on(const Context& ctx, float temperature) {
    return {hidden.on(ctx),
            wte.on(ctx),
            positives.on(ctx),
            negatives.on(ctx),
            log_q_positive.on(ctx),
            log_q_negative.on(ctx),
            N,
            kChannels,
            kVocab,
            P,
            temperature};
  }
};

// Runs both backends on `problem` and compares losses, dhidden and dwte.
void expect_backends_agree(const Context& cpu, const Context& cuda, Problem& problem,
                           const std::string& name) {
  const int N = problem.N;
  Mirrored<float> losses(N), dhidden(static_cast<size_t>(N) * kChannels);
  auto dwte = mirrored(random_floats(static_cast<size_t>(kVocab) * kChannels, 99, -1e-3f, 1e-3f));
  losses.poison();
  dhidden.poison();  // overwritten
  for (const Context* ctx : {&cpu, &cuda}) {
    sampled_softmax_forward_backward(*ctx, losses.on(*ctx), dhidden.on(*ctx), dwte.on(*ctx),
                                     problem.on(*ctx, 0.7f), problem.loss_scale);
  }
  expect_close(name + ".losses", losses, 1e-5);
  expect_close(name + ".dhidden", dhidden, 1e-4);
  expect_close(name + ".dwte", dwte, 1e-4);
}

TEST_F(SampledSoftmaxGpuTest, LossesAndGradientsMatchCpu) {
  Problem problem(300, 200, 1);
  expect_backends_agree(cpu_, cuda_, problem, "sampled_softmax.P200");
}

// 4100 rows × 4096 negatives exceed the 64 MB logits tile: the rows run in two chunks.
TEST_F(SampledSoftmaxGpuTest, SeveralRowChunksMatchCpu) {
  Problem problem(4100, 4096, 20);
  expect_backends_agree(cpu_, cuda_, problem, "sampled_softmax.P4096 (2 chunks)");
}

TEST_F(SampledSoftmaxGpuTest, LossesOnlyMatchCpu) {
  Problem problem(300, 200, 30);
  Mirrored<float> losses(problem.N);
  losses.poison();
  float* const none = nullptr;
  for (const Context* ctx : {&cpu_, &cuda_}) {
    sampled_softmax_forward_backward(*ctx, losses.on(*ctx), none, none, problem.on(*ctx, 1.0f),
                                     1.0f);
  }
  expect_close("sampled_softmax.losses (losses only)", losses, 1e-5);
}

TEST_F(SampledSoftmaxGpuTest, TableGradientIsBitwiseReproducible) {
  Problem problem(300, 200, 40);
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    Buffer<float> dhidden(Device::kCuda, static_cast<size_t>(problem.N) * kChannels);
    Buffer<float> dwte(Device::kCuda, std::vector<float>(kVocab * kChannels, 0.0f));
    Buffer<float> losses(Device::kCuda, problem.N);
    sampled_softmax_forward_backward(cuda_, losses.data(), dhidden.data(), dwte.data(),
                                     problem.on(cuda_, 0.7f), problem.loss_scale);
    std::vector<float> result = dwte.download();
    if (run == 0) {
      first = result;
    } else {
      EXPECT_TRUE(bitwise_equal(first, result));
    }
  }
}

}  // namespace
}  // namespace recforge::testing
