#include "kernels/convert.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <vector>

#include "tests/support/bf16_cases.h"
#include "tests/support/reference.h"

namespace recforge {
namespace {

using testing::ReferenceCase;

bool is_nan_bf16(uint16_t bits) { return (bits & 0x7F80u) == 0x7F80u && (bits & 0x007Fu) != 0; }

// Every bf16 bit pattern, in order.
std::vector<bf16> all_bf16_patterns() {
  std::vector<bf16> patterns(1 << 16);
  for (uint32_t b = 0; b < patterns.size(); ++b) patterns[b] = bf16{static_cast<uint16_t>(b)};
  return patterns;
}

struct ConvertData {
  std::vector<uint32_t> float_bits;  // the specials, then random patterns
  std::vector<double> torch_bf16_bits, torch_float_bits;
};

ConvertData make_data() {
  std::mt19937_64 rng(testing::fresh_seed());
  ConvertData d;
  d.float_bits = testing::bf16_rounding_specials();
  std::vector<uint32_t> random = testing::random_float_patterns(rng, 1 << 20);
  d.float_bits.insert(d.float_bits.end(), random.begin(), random.end());
  std::vector<int32_t> patterns(1 << 16);
  for (int32_t b = 0; b < (1 << 16); ++b) patterns[b] = b;

  ReferenceCase ref("bf16.py", "convert");
  ref.put("floats", testing::as_floats(d.float_bits), {static_cast<int64_t>(d.float_bits.size())});
  ref.put("bits", patterns, {1 << 16});
  ref.run();
  d.torch_bf16_bits = ref.result("bf16_bits");
  d.torch_float_bits = ref.result("float_bits");
  return d;
}

class ConvertReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data_) data_ = std::make_unique<ConvertData>(make_data());
  }
  static void TearDownTestSuite() { data_.reset(); }
  static inline std::unique_ptr<ConvertData> data_;
};

// Bit for bit what PyTorch's .bfloat16() gives, for every non-NaN input (specials included). A NaN
// must give a NaN; its exact pattern is not compared: PyTorch's vectorized CPU kernel writes
// 0xFFFF and its scalar path 0x7FC0, recforge keeps the sign and sets the quiet bit.
TEST_F(ConvertReference, FloatToBf16MatchesPyTorchBitForBit) {
  const ConvertData& d = *data_;
  const std::vector<float> floats = testing::as_floats(d.float_bits);
  std::vector<bf16> out(floats.size(), bf16{0xFFFF});
  convert(Context::cpu(), out.data(), floats.data(), static_cast<int64_t>(floats.size()));
  size_t mismatches = 0, nans = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const auto expected = static_cast<uint16_t>(d.torch_bf16_bits[i]);
    if (is_nan_bf16(expected)) {
      ++nans;
      if (!is_nan_bf16(out[i].bits)) ++mismatches;
    } else if (out[i].bits != expected) {
      ++mismatches;
      if (mismatches <= 10) {
        ADD_FAILURE() << std::hex << "float 0x" << d.float_bits[i] << ": bf16 0x" << out[i].bits
                      << ", PyTorch 0x" << expected;
      }
    }
  }
  std::printf("[ mismatch ] float→bf16: %zu of %zu patterns (%zu NaN compared as NaN)\n",
              mismatches, out.size(), nans);
  EXPECT_EQ(mismatches, 0u);
}

// All 65536 patterns, NaNs included, widen to exactly the float PyTorch gives.
TEST_F(ConvertReference, Bf16ToFloatIsExactForEveryPattern) {
  const std::vector<bf16> patterns = all_bf16_patterns();
  std::vector<float> out(patterns.size(), NAN);
  convert(Context::cpu(), out.data(), patterns.data(), static_cast<int64_t>(patterns.size()));
  size_t mismatches = 0;
  for (size_t b = 0; b < out.size(); ++b) {
    if (std::bit_cast<uint32_t>(out[b]) != static_cast<uint32_t>(data_->torch_float_bits[b])) {
      ++mismatches;
    }
  }
  std::printf("[ mismatch ] bf16→float: %zu of %zu patterns\n", mismatches, out.size());
  EXPECT_EQ(mismatches, 0u);
}

TEST(Convert, NaNStaysAQuietNaNWithItsSign) {
  for (uint32_t pattern : testing::bf16_rounding_specials()) {
    if ((pattern & 0x7FFFFFFFu) <= 0x7F800000u) continue;  // not a NaN
    const float x = std::bit_cast<float>(pattern);
    bf16 out{};
    convert(Context::cpu(), &out, &x, 1);
    EXPECT_TRUE(is_nan_bf16(out.bits)) << std::hex << pattern;
    EXPECT_EQ(out.bits & 0x0040u, 0x0040u) << "quiet bit of 0x" << std::hex << pattern;
    EXPECT_EQ(out.bits >> 15, pattern >> 31) << "sign of 0x" << std::hex << pattern;
  }
}

// Widening then narrowing gives back every non-NaN pattern (NaNs come back as NaNs).
TEST(Convert, RoundTripKeepsEveryBf16) {
  const std::vector<bf16> patterns = all_bf16_patterns();
  const auto n = static_cast<int64_t>(patterns.size());
  std::vector<float> wide(patterns.size());
  std::vector<bf16> back(patterns.size(), bf16{0});
  convert(Context::cpu(), wide.data(), patterns.data(), n);
  convert(Context::cpu(), back.data(), wide.data(), n);
  for (size_t b = 0; b < patterns.size(); ++b) {
    if (is_nan_bf16(patterns[b].bits)) {
      EXPECT_TRUE(is_nan_bf16(back[b].bits));
    } else {
      ASSERT_EQ(back[b].bits, patterns[b].bits);
    }
  }
}

TEST(Convert, EmptyRangeWritesNothing) {
  bf16 narrow{0x1234};
  float wide = 5.0f;
  convert(Context::cpu(), &narrow, &wide, 0);
  convert(Context::cpu(), &wide, &narrow, 0);
  EXPECT_EQ(narrow.bits, 0x1234);
  EXPECT_EQ(wide, 5.0f);
}

}  // namespace
}  // namespace recforge
