// fp32 ↔ bf16 conversion:
//  - the CPU backend against PyTorch bit for bit, on the rounding specials and random patterns over
//    every exponent (float → bf16) and on all 65536 bf16 patterns (bf16 → float); NaNs, the round
//    trip and empty ranges;
//  - the CUDA backend against the CPU backend bit for bit (suites *Gpu*): the rounding specials,
//    random patterns over every exponent (NaN payloads included), all 65536 bf16 patterns, sizes
//    that leave a tail after the last 8-element vector, and views that are not 16-byte aligned
//    (the element-by-element path).
#include "kernels/convert.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/bf16_cases.h"
#include "tests/support/reference.h"

namespace recforge::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// The CPU backend against PyTorch.

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
  std::mt19937_64 rng(fresh_seed());
  ConvertData d;
  d.float_bits = bf16_rounding_specials();
  std::vector<uint32_t> random = random_float_patterns(rng, 1 << 20);
  d.float_bits.insert(d.float_bits.end(), random.begin(), random.end());
  std::vector<int32_t> patterns(1 << 16);
  for (int32_t b = 0; b < (1 << 16); ++b) patterns[b] = b;

  ReferenceCase ref("bf16.py", "convert");
  ref.put("floats", as_floats(d.float_bits), {static_cast<int64_t>(d.float_bits.size())});
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
  const std::vector<float> floats = as_floats(d.float_bits);
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
  for (uint32_t pattern : bf16_rounding_specials()) {
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

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend.

// The specials, random finite patterns, then random patterns of any kind (NaNs with payloads, ±∞).
std::vector<float> float_inputs() {
  std::mt19937_64 rng(7);
  std::vector<uint32_t> bits = bf16_rounding_specials();
  std::vector<uint32_t> finite = random_float_patterns(rng, (1 << 20) + 5);
  bits.insert(bits.end(), finite.begin(), finite.end());
  for (int i = 0; i < 4099; ++i) bits.push_back(static_cast<uint32_t>(rng()));
  return as_floats(bits);
}

// All bf16 patterns, twice, and a few more so the count is not a multiple of 8.
std::vector<bf16> bf16_inputs() {
  std::vector<bf16> patterns;
  for (int copy = 0; copy < 2; ++copy) {
    for (uint32_t b = 0; b < (1u << 16); ++b) patterns.push_back(bf16{static_cast<uint16_t>(b)});
  }
  for (uint16_t b : {0x7FC1, 0x8001, 0x3F80}) patterns.push_back(bf16{b});
  return patterns;
}

// Converts src[offset:] into dst[offset:] on both backends, dst poisoned first, and expects the
// CUDA copy to equal the CPU copy byte for byte. Offsets 1 and 3 misalign the views.
template <typename Dst, typename Src>
void expect_bit_identical(const std::vector<Src>& src_host, const Context& cpu,
                          const Context& gpu) {
  auto src = mirrored(src_host);
  for (size_t offset : {0, 1, 3}) {
    Mirrored<Dst> dst(src_host.size());
    dst.poison();
    const auto n = static_cast<int64_t>(src_host.size() - offset);
    for (const Context* ctx : {&cpu, &gpu}) {
      convert(*ctx, dst.on(*ctx) + offset, src.on(*ctx) + offset, n);
    }
    const std::vector<Dst> on_gpu = dst.cuda.download(), on_cpu = dst.cpu.download();
    size_t mismatches = 0;
    for (size_t i = 0; i < on_gpu.size(); ++i) {
      if (std::memcmp(&on_gpu[i], &on_cpu[i], sizeof(Dst)) != 0) ++mismatches;
    }
    std::cout << "[ mismatch ] convert to " << dtype_name<Dst>() << " offset " << offset << ": "
              << mismatches << " of " << n << std::endl;
    EXPECT_EQ(mismatches, 0u) << "offset " << offset;
  }
}

// The conversion from storage type Source to the other one, and the inputs it is checked on.
template <typename Source>
struct ConversionFrom;

template <>
struct ConversionFrom<float> {
  using Destination = bf16;
  static constexpr const char* kName = "FloatToBf16";
  static std::vector<float> inputs() { return float_inputs(); }
};

template <>
struct ConversionFrom<bf16> {
  using Destination = float;
  static constexpr const char* kName = "Bf16ToFloat";
  static std::vector<bf16> inputs() { return bf16_inputs(); }
};

template <typename Source>
class ConvertGpuTest : public GpuTest {};

// Typed test names: FloatToBf16, Bf16ToFloat.
struct ConversionName {
  template <typename Source>
  static std::string GetName(int) {
    return ConversionFrom<Source>::kName;
  }
};

using StorageTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(ConvertGpuTest, StorageTypes, ConversionName);

TYPED_TEST(ConvertGpuTest, IsBitIdenticalToCpu) {
  using Conversion = ConversionFrom<TypeParam>;
  expect_bit_identical<typename Conversion::Destination>(Conversion::inputs(), this->cpu_,
                                                         this->cuda_);
}

class ConvertTailGpuTest : public GpuTest {};

TEST_F(ConvertTailGpuTest, ShortRangesTakeTheTailPath) {
  const std::vector<float> inputs = float_inputs();
  for (size_t n : {1, 7, 9, 15}) {
    expect_bit_identical<bf16>(std::vector<float>(inputs.begin(), inputs.begin() + n + 3), cpu_,
                               cuda_);
  }
}

}  // namespace
}  // namespace recforge::testing
