// ggml tensor types (the element types of GGUF files): their ids, names and block layouts, and the
// conversion of the ones recforge reads to float.
//
// A ggml tensor is stored as blocks along ne[0], its fastest-varying dimension. Plain types are
// blocks of one element; the quantized ones hold 32 elements and their scales:
//   Q8_0: f16 d, 32 × int8 q                 → d·q
//   Q4_0: f16 d, 16 bytes of 4-bit q         → d·(q − 8)
//   Q4_1: f16 d, f16 m, 16 bytes of 4-bit q  → d·q + m
// In the 4-bit blocks byte j holds element j in its low nibble and element 16 + j in its high one.
// The arithmetic is the one of the `gguf` Python package (float32, no fused multiply-add), so the
// values are bit-identical to gguf.quants.dequantize.
#pragma once

#include <cstdint>
#include <span>

namespace recforge {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

// A type's storage: `elements` values in `bytes` bytes.
struct GgmlBlock {
  uint32_t elements = 0;
  uint32_t bytes = 0;
};

// "Q4_1", or "unknown" for an id ggml does not define.
const char* ggml_type_name(uint32_t type);
// The block layout of any type ggml defines (quantized types recforge cannot read included); a
// zero block for an unknown id.
GgmlBlock ggml_block(uint32_t type);
// Whether dequantize() converts this type: F32, F16, BF16, Q8_0, Q4_0 and Q4_1.
bool ggml_type_readable(uint32_t type);

// IEEE 754 binary16 bits as float: exact for every value, subnormals, ±∞ and NaN included.
float f16_to_float(uint16_t bits);

// Converts `out.size()` elements of `type` stored in `bytes` to float. Throws recforge::Error
// unless the type is readable, out.size() is a multiple of its block and `bytes` holds exactly
// those blocks. Non-finite values are copied as they are.
void dequantize(uint32_t type, std::span<const uint8_t> bytes, std::span<float> out);

}  // namespace recforge
