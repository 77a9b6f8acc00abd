// ggml tensor types: names and block layouts, the exact half-precision conversion (all 65536 bit
// patterns against the arithmetic definition), and each quantized block against values computed
// by hand.
#include "model/formats/dequantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/check.h"

namespace recforge {
namespace {

constexpr auto kQ8_0 = static_cast<uint32_t>(GgmlType::kQ8_0);
constexpr auto kQ4_0 = static_cast<uint32_t>(GgmlType::kQ4_0);
constexpr auto kQ4_1 = static_cast<uint32_t>(GgmlType::kQ4_1);

std::vector<float> dequantized(uint32_t type, const std::vector<uint8_t>& bytes, size_t elements) {
  std::vector<float> out(elements);
  dequantize(type, bytes, out);
  return out;
}

// binary16 by its definition: (−1)^s · 2^(e − 15) · (1 + m/1024), subnormals 2^−14 · m/1024.
double f16_by_definition(uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa / 1024.0, -14)
                                         : std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  return sign ? -magnitude : magnitude;
}

TEST(GgmlTypeTest, NamesAndBlocks) {
  EXPECT_STREQ(ggml_type_name(0), "F32");
  EXPECT_STREQ(ggml_type_name(3), "Q4_1");
  EXPECT_STREQ(ggml_type_name(12), "Q4_K");
  EXPECT_STREQ(ggml_type_name(30), "BF16");
  EXPECT_STREQ(ggml_type_name(4), "unknown");  // Q4_2, removed from ggml
  EXPECT_STREQ(ggml_type_name(1000), "unknown");
  EXPECT_EQ(ggml_block(kQ8_0).elements, 32u);
  EXPECT_EQ(ggml_block(kQ8_0).bytes, 34u);
  EXPECT_EQ(ggml_block(kQ4_0).bytes, 18u);
  EXPECT_EQ(ggml_block(kQ4_1).bytes, 20u);
  EXPECT_EQ(ggml_block(static_cast<uint32_t>(GgmlType::kQ6_K)).bytes, 210u);
  EXPECT_EQ(ggml_block(99).elements, 0u);
  EXPECT_TRUE(ggml_type_readable(static_cast<uint32_t>(GgmlType::kBF16)));
  EXPECT_FALSE(ggml_type_readable(static_cast<uint32_t>(GgmlType::kQ5_0)));
}

TEST(F16ToFloatTest, EveryFiniteValueIsExact) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    if (((bits >> 10) & 0x1F) == 0x1F) continue;
    const float value = f16_to_float(static_cast<uint16_t>(bits));
    EXPECT_EQ(static_cast<double>(value), f16_by_definition(static_cast<uint16_t>(bits)))
        << std::hex << bits;
    EXPECT_EQ(std::signbit(value), (bits & 0x8000) != 0) << std::hex << bits;
  }
}

TEST(F16ToFloatTest, InfinitiesAndNans) {
  EXPECT_EQ(f16_to_float(0x7C00), INFINITY);
  EXPECT_EQ(f16_to_float(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_float(0x7C01)));  // signalling payload stays a NaN
  EXPECT_TRUE(std::isnan(f16_to_float(0xFFFF)));
}

TEST(DequantizeTest, F32AndBf16AreLittleEndianBits) {
  EXPECT_EQ(dequantized(0, {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC1}, 2),
            (std::vector<float>{1.0f, -10.0f}));
  EXPECT_EQ(dequantized(30, {0x80, 0x3F, 0x49, 0x40}, 2), (std::vector<float>{1.0f, 3.140625f}));
}

TEST(DequantizeTest, Q8_0MultipliesEachByteByTheScale) {
  std::vector<uint8_t> block = {0x00, 0x3C};  // d = 1
  for (int j = 0; j < 32; ++j) block.push_back(static_cast<uint8_t>(j * 8 - 128));
  block[2 + 31] = 0x7F;
  std::vector<float> values = dequantized(kQ8_0, block, 32);
  for (int j = 0; j < 31; ++j) EXPECT_EQ(values[j], j * 8.0f - 128.0f) << j;
  EXPECT_EQ(values[31], 127.0f);
}

TEST(DequantizeTest, Q4_0CentresNibblesOnEight) {
  std::vector<uint8_t> block = {0x00, 0xB8, 0xF0};  // d = −0.5; byte 0: low 0, high 15
  block.resize(18, 0x88);                           // the rest: 8 → 0
  std::vector<float> values = dequantized(kQ4_0, block, 32);
  EXPECT_EQ(values[0], 4.0f);    // −0.5 · (0 − 8)
  EXPECT_EQ(values[16], -3.5f);  // −0.5 · (15 − 8)
  EXPECT_EQ(values[1], -0.0f);
  EXPECT_EQ(values[31], -0.0f);
}

TEST(DequantizeTest, Q4_1ScalesThenAddsTheMinimum) {
  std::vector<uint8_t> block = {0x66, 0x2E, 0x00, 0x3C};  // d = 0.1 (f16 0x2E66), m = 1
  block.resize(20, 0x00);
  block[4] = 0xA3;  // element 0: 3, element 16: 10
  std::vector<float> values = dequantized(kQ4_1, block, 32);
  const float d = f16_to_float(0x2E66);
  const float product0 = d * 3.0f, product16 = d * 10.0f;  // rounded, then the sum rounded
  EXPECT_EQ(values[0], product0 + 1.0f);
  EXPECT_EQ(values[16], product16 + 1.0f);
  EXPECT_EQ(values[5], 1.0f);
}

TEST(DequantizeTest, ConsecutiveBlocksFillConsecutiveValues) {
  std::vector<uint8_t> bytes;
  for (uint8_t scale_high : {0x3C, 0x40}) {  // d = 1, then d = 2
    bytes.insert(bytes.end(), {0x00, scale_high});
    bytes.insert(bytes.end(), 32, 3);
  }
  std::vector<float> values = dequantized(kQ8_0, bytes, 64);
  EXPECT_EQ(values[31], 3.0f);
  EXPECT_EQ(values[32], 6.0f);
}

TEST(DequantizeTest, SizesMustMatch) {
  std::vector<float> out(32);
  EXPECT_THROW(dequantize(kQ8_0, std::vector<uint8_t>(33), out), Error);
  std::vector<float> partial(16);
  EXPECT_THROW(dequantize(kQ8_0, std::vector<uint8_t>(34), partial), Error);
  EXPECT_THROW(dequantize(0, std::vector<uint8_t>(3), std::span<float>(out.data(), 1)), Error);
}

TEST(DequantizeTest, UnreadableTypesAreRefused) {
  std::vector<float> out(32);
  EXPECT_THROW(dequantize(static_cast<uint32_t>(GgmlType::kQ5_0), std::vector<uint8_t>(22), out),
               Error);
  EXPECT_THROW(dequantize(99, {}, {}), Error);
}

}  // namespace
}  // namespace recforge
