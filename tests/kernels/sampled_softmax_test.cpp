#include "kernels/sampled_softmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>

#include "kernels/classifier.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;
using testing::type_name;

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
  c.hidden = testing::random_normal<float>(rng, N * C);
  c.wte = testing::random_normal<float>(rng, table, 3.0 / std::sqrt(C));
  c.dwte0 = testing::random_normal<float>(rng, table, 0.01);
  c.positives = testing::random_ints(rng, N, 0, V);
  std::bernoulli_distribution ignored(0.1);
  for (int32_t& p : c.positives) {
    if (ignored(rng)) p = kIgnoreIndex;
  }
  c.negatives = testing::random_ints(rng, P, 0, V);
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
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<SampledCase> cases;
  ReferenceCase ref("kernels.py", "sampled_softmax");
  for (const Shape& shape : {kSmall, kLarge}) {
    SampledCase c = make_case(rng, shape);
    const auto [N, C, V, P, offset, temperature] = shape;
    std::string p = testing::case_prefix(cases.size());
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
    std::string p = testing::case_prefix(i);
    cases[i].losses = ref.result(p + "losses");
    cases[i].dhidden = ref.result(p + "dhidden");
    cases[i].dwte = ref.result(p + "dwte");
  }
  return cases;
}

// The PyTorch references are computed once and shared by the tests of the suite.
class SampledSoftmaxReference : public testing::SharedReferenceCases<SampledCase, make_cases> {
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
      testing::run_inside_parallel_region(run);
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

// Every item as a negative (shuffled), a uniform logQ and τ = 1: each row's positive is among the
// negatives and removed, so the candidates are exactly the V items and the op is the full
// softmax cross-entropy of the classifier.
template <typename T>
void check_full_softmax_limit(double tolerance) {
  const int N = 150, C = 32, V = 500;
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<T> hidden = testing::random_normal<T>(rng, N * C);
  std::vector<T> wte = testing::random_normal<T>(rng, V * C, 0.5);
  std::vector<int32_t> positives = testing::random_ints(rng, N, 0, V);
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

TEST(SampledSoftmaxLimit, EveryItemAsNegativeEqualsFullSoftmaxInFloat) {
  check_full_softmax_limit<float>(1e-5);
}

TEST(SampledSoftmaxLimit, EveryItemAsNegativeEqualsFullSoftmaxInDouble) {
  check_full_softmax_limit<double>(1e-12);
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

}  // namespace
}  // namespace recforge
