// Dropout with a counter-based Philox4x32-10 mask: the generator against Random123's known answers;
// the CPU backend against a numpy Philox reference (tests/reference/kernels.py), its kept fraction
// and its argument checks; the CUDA backend's mask, hence its output, equal to the CPU backend's
// bit for bit.
#include "kernels/dropout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/math.h"
#include "tests/support/backends.h"
#include "tests/support/compare.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

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
  report_error("philox4x32_10 mismatched words (of 12)", mismatched_words);
}

constexpr int64_t kReferenceSize = 100003;  // not a multiple of 4: the last Philox block is partial

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
  std::mt19937_64 rng(fresh_seed());
  DropoutData d;
  d.params = {0.3f, rng(), rng() | (1ULL << 40)};  // both words of seed and stream in use
  d.inp = random_normal<float>(rng, kReferenceSize);
  d.dout = random_normal<float>(rng, kReferenceSize);
  ReferenceCase ref("kernels.py", "dropout");
  ref.put("seed", words(d.params.seed), {2});
  ref.put("stream", words(d.params.stream), {2});
  ref.put_scalar("p", d.params.p);
  ref.put("inp", d.inp, {kReferenceSize});
  ref.put("dout", d.dout, {kReferenceSize});
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
  std::vector<float> out(kReferenceSize, NAN);
  dropout_forward(Context::cpu(), out.data(), data_->inp.data(), kReferenceSize, data_->params);
  expect_close("dropout.float.out", out, data_->out, 1e-6);
}

TEST_F(DropoutReference, BackwardMatchesNumpyPhilox) {
  std::vector<float> dinp(kReferenceSize, NAN);
  dropout_backward(Context::cpu(), dinp.data(), data_->dout.data(), kReferenceSize, data_->params);
  expect_close("dropout.float.dinp", dinp, data_->dinp, 1e-6);
}

TEST_F(DropoutReference, InPlaceForwardMatchesNumpyPhilox) {
  std::vector<float> x = data_->inp;
  dropout_forward(Context::cpu(), x.data(), x.data(), kReferenceSize, data_->params);
  expect_close("dropout.float.out (in place)", x, data_->out, 1e-6);
}

TEST(DropoutStatistics, KeptFractionIsOneMinusP) {
  std::mt19937_64 rng(fresh_seed());
  const int64_t n = 1 << 21;
  std::vector<float> ones(n, 1.0f), out(n, NAN);
  for (float p : {0.1f, 0.5f}) {
    DropoutParams params{p, rng(), rng()};
    dropout_forward(Context::cpu(), out.data(), ones.data(), n, params);
    int64_t kept = 0;
    for (float x : out) kept += x != 0.0f;
    double fraction = static_cast<double>(kept) / n;
    double sigma = std::sqrt(p * (1.0 - p) / n);
    report_error(
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

using DropoutGpuTest = GpuTest;

constexpr int64_t kGpuSize = (1 << 20) + 3;  // not a multiple of the 4 numbers per Philox call

TEST_F(DropoutGpuTest, ForwardMaskIsBitwiseTheCpuMask) {
  const DropoutParams params{0.25f, 0x1234567890ABCDEFull, 7};
  auto inp = mirrored(random_floats(kGpuSize, 1));
  Mirrored<float> out(kGpuSize);
  out.poison();
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dropout_forward(*ctx, out.on(*ctx), inp.on(*ctx), kGpuSize, params);
  }
  std::vector<float> gpu = out.cuda.download(), cpu = out.cpu.download();
  EXPECT_TRUE(bitwise_equal(gpu, cpu));
  int64_t dropped = 0;
  for (float v : cpu) dropped += v == 0.0f;
  EXPECT_NEAR(static_cast<double>(dropped) / kGpuSize, params.p, 0.01);
  expect_close("dropout.out", out, 1e-7);
}

TEST_F(DropoutGpuTest, BackwardInPlaceIsBitwiseTheCpuGradient) {
  const DropoutParams params{0.5f, 42, 3};
  auto grad = mirrored(random_floats(kGpuSize, 2));
  for (const Context* ctx : {&cpu_, &cuda_}) {
    dropout_backward(*ctx, grad.on(*ctx), grad.on(*ctx), kGpuSize, params);
  }
  EXPECT_TRUE(bitwise_equal(grad.cuda.download(), grad.cpu.download()));
  expect_close("dropout.dinp", grad, 1e-7);
}

TEST_F(DropoutGpuTest, ZeroProbabilityIsIdentity) {
  auto inp = mirrored(random_floats(4096, 3));
  Mirrored<float> out(4096);
  out.poison();
  dropout_forward(cuda_, out.cuda.data(), inp.cuda.data(), 4096, DropoutParams{0.0f, 1, 1});
  EXPECT_TRUE(bitwise_equal(out.cuda.download(), inp.cpu.download()));
}

}  // namespace
}  // namespace recforge::testing
