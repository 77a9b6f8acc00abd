#include "kernels/dropout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "kernels/math.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::convert;
using testing::expect_close;
using testing::ReferenceCase;

// Random123's published known-answer vectors for Philox4x32-10 (tests/kat_vectors).
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Vector {
    Philox4 counter;
    uint32_t key0, key1;
    Philox4 expected;
  };
  const Vector vectors[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  int mismatched_words = 0;
  for (const Vector& v : vectors) {
    Philox4 result = philox4x32_10(v.counter, v.key0, v.key1);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(result.v[i], v.expected.v[i])
          << "word " << i << " of counter 0x" << std::hex << v.counter.v[0];
      mismatched_words += result.v[i] != v.expected.v[i];
    }
  }
  testing::report_error("philox4x32_10 mismatched words (of 12)", mismatched_words);
}

constexpr int64_t kN = 100003;  // not a multiple of 4: the last Philox block is partial

// Splits a 64-bit value into its [lo32, hi32] words for the .npy exchange.
std::vector<int32_t> words(uint64_t x) {
  return {static_cast<int32_t>(static_cast<uint32_t>(x)), static_cast<int32_t>(x >> 32)};
}

struct DropoutData {
  DropoutParams params;
  std::vector<float> inp, dout;
  std::vector<double> out, dinp;
};

DropoutData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  DropoutData d;
  d.params = {0.3f, rng(), rng() | (1ULL << 40)};  // both words of seed and stream in use
  d.inp = testing::random_normal<float>(rng, kN);
  d.dout = testing::random_normal<float>(rng, kN);
  ReferenceCase ref("kernels.py", "dropout");
  ref.put("seed", words(d.params.seed), {2});
  ref.put("stream", words(d.params.stream), {2});
  ref.put_scalar("p", d.params.p);
  ref.put("inp", d.inp, {kN});
  ref.put("dout", d.dout, {kN});
  ref.run();
  d.out = ref.result("out");
  d.dinp = ref.result("dinp");
  return d;
}

// The numpy Philox reference is computed once and shared by the tests of the suite.
class DropoutReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<DropoutData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }
  static inline std::unique_ptr<DropoutData> data_;
};

TEST_F(DropoutReference, ForwardMatchesNumpyPhilox) {
  std::vector<float> out(kN, NAN);
  dropout_forward(Context::cpu(), out.data(), data_->inp.data(), kN, data_->params);
  expect_close("dropout.float.out", out, data_->out, 1e-6);
}

TEST_F(DropoutReference, BackwardMatchesNumpyPhilox) {
  std::vector<float> dinp(kN, NAN);
  dropout_backward(Context::cpu(), dinp.data(), data_->dout.data(), kN, data_->params);
  expect_close("dropout.float.dinp", dinp, data_->dinp, 1e-6);
}

TEST_F(DropoutReference, InPlaceForwardMatchesNumpyPhilox) {
  std::vector<float> x = data_->inp;
  dropout_forward(Context::cpu(), x.data(), x.data(), kN, data_->params);
  expect_close("dropout.float.out (in place)", x, data_->out, 1e-6);
}

TEST(DropoutStatistics, KeptFractionIsOneMinusP) {
  std::mt19937_64 rng(testing::fresh_seed());
  const int64_t n = 1 << 21;
  std::vector<float> ones(n, 1.0f), out(n, NAN);
  for (float p : {0.1f, 0.5f}) {
    DropoutParams params{p, rng(), rng()};
    dropout_forward(Context::cpu(), out.data(), ones.data(), n, params);
    int64_t kept = 0;
    for (float x : out) kept += x != 0.0f;
    double fraction = static_cast<double>(kept) / n;
    double sigma = std::sqrt(p * (1.0 - p) / n);
    testing::report_error(
        "dropout kept fraction − (1 − p), p = " + std::to_string(p) + " (in standard deviations)",
        std::abs(fraction - (1.0 - p)) / sigma);
    EXPECT_NEAR(fraction, 1.0 - p, 6 * sigma) << "p = " << p;
  }
}

TEST(DropoutValidation, ProbabilityOutsideUnitIntervalThrows) {
  std::vector<float> x(8, 1.0f);
  for (float p : {-0.1f, 1.0f, 1.5f, NAN}) {
    DropoutParams params{p, 1, 2};
    try {
      dropout_forward(Context::cpu(), x.data(), x.data(), 8, params);
      ADD_FAILURE() << "dropout_forward accepted p = " << p;
    } catch (const Error& e) {
      std::printf("[  message ] %s\n", e.what());
    }
    EXPECT_THROW(dropout_backward(Context::cpu(), x.data(), x.data(), 8, params), Error) << p;
  }
}

}  // namespace
}  // namespace recforge
