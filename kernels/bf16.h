// bfloat16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits). Same range
// as float, 8 significant bits (relative spacing 2⁻⁸ ≈ 0.4%).
//
// `bf16` is a plain 2-byte value type usable in host code without CUDA headers; CUDA kernels view
// the same memory as __nv_bfloat16 (identical size, alignment and bits). The conversions below are
// the per-element math both backends share: float → bf16 rounds to nearest, ties to even (what
// PyTorch's .bfloat16() and the GPU's cvt.rn.bf16.f32 do); NaN stays a (quiet) NaN; values past the
// largest bf16 round to ±∞, as in IEEE rounding.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/math.h"

namespace recforge {

struct bf16 {
  uint16_t bits;
};
static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2);

RECFORGE_HD float bf16_to_float(bf16 x) {
  const uint32_t bits = static_cast<uint32_t>(x.bits) << 16;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
#endif
}

// Round to nearest even on the bit pattern: add 0x7FFF plus the lowest kept bit, then truncate.
// A carry out of the mantissa correctly bumps the exponent (and the largest finite values to ∞).
RECFORGE_HD bf16 float_to_bf16(float f) {
#if defined(__CUDA_ARCH__)
  const uint32_t bits = __float_as_uint(f);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
#endif
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: keep the sign, force the quiet bit
    return bf16{static_cast<uint16_t>((bits >> 16) | 0x0040u)};
  }
  const uint32_t lowest_kept = (bits >> 16) & 1u;
  return bf16{static_cast<uint16_t>((bits + 0x7FFFu + lowest_kept) >> 16)};
}

// The value a float keeps when stored as bf16 and read back.
RECFORGE_HD float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// Element conversions for code templated on a storage type: load widens to float, store narrows.
RECFORGE_HD float load_as_float(float x) { return x; }
RECFORGE_HD float load_as_float(bf16 x) { return bf16_to_float(x); }
RECFORGE_HD double load_as_float(double x) { return x; }

// A value of the math type (float, or double on the CPU) as the storage type: rounded once for
// bf16, kept as it is otherwise.
template <typename Storage, typename Math>
RECFORGE_HD Storage store_as(Math x) {
  if constexpr (std::is_same_v<Storage, bf16>) {
    return float_to_bf16(static_cast<float>(x));
  } else {
    return static_cast<Storage>(x);
  }
}

// The name of a storage type for messages and benchmark tables.
template <typename Storage>
constexpr const char* dtype_name() {
  if constexpr (sizeof(Storage) == 2) {
    return "bf16";
  } else if constexpr (sizeof(Storage) == 4) {
    return "fp32";
  } else {
    return "fp64";
  }
}

}  // namespace recforge
