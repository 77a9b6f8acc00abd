// The float32 bit patterns a float → bf16 conversion must get right, and random patterns over the
// whole exponent range: shared by the CPU test (against PyTorch) and the GPU test (against the
// CPU).
#pragma once

#include <bit>
#include <cstdint>
#include <random>
#include <vector>

namespace recforge::testing {

// Each pattern with its sign bit clear; bf16_rounding_specials() adds the negated copies.
inline constexpr uint32_t kPositiveSpecials[] = {
    0x00000000u,  // +0
    0x7F800000u,  // +∞
    0x7FC00000u,  // the quiet NaN
    0x7F800001u,  // a signalling NaN (payload only in the dropped low half)
    0x7FBFFFFFu,  // the signalling NaN with the largest payload
    0x7FFF8000u,  // a NaN whose rounding carry would spill into the sign bit
    0x7FFFFFFFu,  // the NaN with every bit set
    0x00000001u,  // the smallest subnormal → +0
    0x00007FFFu,  // below half a bf16 ulp → +0
    0x00008000u,  // subnormal tie, even side → +0
    0x00008001u,  // just past the tie → the smallest bf16 subnormal
    0x00018000u,  // subnormal tie, odd side → rounds up to 0x0002
    0x007F7FFFu,  // below a tie → 0x007F
    0x007F8000u,  // tie, odd side → the smallest normal 0x0080
    0x007FFFFFu,  // the largest float subnormal → the smallest normal
    0x00800000u,  // the smallest normal float (exact in bf16)
    0x3F800000u,  // 1 (exact)
    0x3F807FFFu,  // 1 + just under half a bf16 ulp → 1
    0x3F808000u,  // 1 + half an ulp: tie, even side → 1
    0x3F808001u,  // just past the tie → 1 + ulp
    0x3F818000u,  // tie, odd side → rounds up to 0x3F82
    0x3FFF8000u,  // tie, odd side, carry into the exponent → 2
    0x7F7E8000u,  // tie below the largest bf16, even side → 0x7F7E
    0x7F7EFFFFu,  // rounds up to the largest bf16
    0x7F7F0000u,  // the largest bf16 (exact)
    0x7F7F7FFFu,  // just below half an ulp above it → the largest bf16
    0x7F7F8000u,  // tie above the largest bf16, odd side → +∞
    0x7F7FFFFFu,  // the largest finite float → +∞
};

inline std::vector<uint32_t> bf16_rounding_specials() {
  std::vector<uint32_t> bits;
  for (uint32_t pattern : kPositiveSpecials) {
    bits.push_back(pattern);
    bits.push_back(pattern | 0x80000000u);
  }
  return bits;
}

// n float32 patterns with a random sign, a uniform exponent field over every finite exponent
// (0–254: subnormals up to the largest binade) and a random mantissa; every eighth one sits
// exactly on a rounding tie (low half 0x8000), half of those on the odd side.
inline std::vector<uint32_t> random_float_patterns(std::mt19937_64& rng, size_t n) {
  std::uniform_int_distribution<uint32_t> sign(0, 1), exponent(0, 254), mantissa(0, 0x7FFFFF);
  std::vector<uint32_t> bits(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t m = mantissa(rng);
    if (i % 8 == 0) m = (m & 0x7F0000u) | 0x8000u;
    bits[i] = (sign(rng) << 31) | (exponent(rng) << 23) | m;
  }
  return bits;
}

inline std::vector<float> as_floats(const std::vector<uint32_t>& bits) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = std::bit_cast<float>(bits[i]);
  return values;
}

}  // namespace recforge::testing
