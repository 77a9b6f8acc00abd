#include "model/formats/dequantize.h"

#include <bit>
#include <cstring>

#include "kernels/bf16.h"
#include "kernels/check.h"

namespace recforge {

static_assert(std::endian::native == std::endian::little,
              "GGUF data is little-endian; a big-endian host would need byte swaps");

namespace {

struct TypeEntry {
  uint32_t id;
  const char* name;
  GgmlBlock block;
};

// Every type ggml defines (ggml.h, gguf-py constants.GGML_QUANT_SIZES); the ids in the gaps were
// removed from ggml.
constexpr uint32_t kSuper = 256;  // QK_K: elements of a K-quant block
constexpr TypeEntry kTypes[] = {
    {0, "F32", {1, 4}},
    {1, "F16", {1, 2}},
    {2, "Q4_0", {32, 2 + 16}},
    {3, "Q4_1", {32, 2 + 2 + 16}},
    {6, "Q5_0", {32, 2 + 4 + 16}},
    {7, "Q5_1", {32, 2 + 2 + 4 + 16}},
    {8, "Q8_0", {32, 2 + 32}},
    {9, "Q8_1", {32, 4 + 4 + 32}},
    {10, "Q2_K", {kSuper, 2 + 2 + kSuper / 16 + kSuper / 4}},
    {11, "Q3_K", {kSuper, 2 + kSuper / 4 + kSuper / 8 + 12}},
    {12, "Q4_K", {kSuper, 2 + 2 + kSuper / 2 + 12}},
    {13, "Q5_K", {kSuper, 2 + 2 + kSuper / 2 + kSuper / 8 + 12}},
    {14, "Q6_K", {kSuper, 2 + kSuper / 2 + kSuper / 4 + kSuper / 16}},
    {15, "Q8_K", {kSuper, 4 + kSuper + kSuper / 8}},
    {16, "IQ2_XXS", {kSuper, 2 + kSuper / 4}},
    {17, "IQ2_XS", {kSuper, 2 + kSuper / 4 + kSuper / 32}},
    {18, "IQ3_XXS", {kSuper, 2 + kSuper / 4 + kSuper / 8}},
    {19, "IQ1_S", {kSuper, 2 + kSuper / 8 + kSuper / 16}},
    {20, "IQ4_NL", {32, 2 + 16}},
    {21, "IQ3_S", {kSuper, 2 + kSuper / 4 + kSuper / 8 + kSuper / 32 + 4}},
    {22, "IQ2_S", {kSuper, 2 + kSuper / 4 + kSuper / 16}},
    {23, "IQ4_XS", {kSuper, 2 + 2 + kSuper / 2 + kSuper / 64}},
    {24, "I8", {1, 1}},
    {25, "I16", {1, 2}},
    {26, "I32", {1, 4}},
    {27, "I64", {1, 8}},
    {28, "F64", {1, 8}},
    {29, "IQ1_M", {kSuper, kSuper / 8 + kSuper / 16 + kSuper / 32}},
    {30, "BF16", {1, 2}},
    {34, "TQ1_0", {kSuper, 2 + 4 * 13}},
    {35, "TQ2_0", {kSuper, 2 + 64}},
    {39, "MXFP4", {32, 1 + 16}},
};

const TypeEntry* find_type(uint32_t type) {
  for (const TypeEntry& entry : kTypes) {
    if (entry.id == type) return &entry;
  }
  return nullptr;
}

uint16_t load_u16(const uint8_t* bytes) { return static_cast<uint16_t>(bytes[0] | bytes[1] << 8); }

float load_f16(const uint8_t* bytes) { return f16_to_float(load_u16(bytes)); }

void dequantize_f32(std::span<const uint8_t> bytes, std::span<float> out) {
  std::memcpy(out.data(), bytes.data(), out.size_bytes());
}

void dequantize_f16(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_f16(&bytes[2 * i]);
}

void dequantize_bf16(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(bf16{load_u16(&bytes[2 * i])});
}

// The loops below are compiled with -ffp-contract=off (CMakeLists.txt): d·q + m must round twice,
// as NumPy does, not once as a fused multiply-add would.
void dequantize_q8_0(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t block = 0; block < out.size() / 32; ++block) {
    const uint8_t* in = &bytes[block * 34];
    const float d = load_f16(in);
    for (int j = 0; j < 32; ++j) {
      out[block * 32 + j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
    }
  }
}

void dequantize_q4_0(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t block = 0; block < out.size() / 32; ++block) {
    const uint8_t* in = &bytes[block * 18];
    const float d = load_f16(in);
    float* values = &out[block * 32];
    for (int j = 0; j < 16; ++j) {
      values[j] = d * static_cast<float>((in[2 + j] & 0x0F) - 8);
      values[16 + j] = d * static_cast<float>((in[2 + j] >> 4) - 8);
    }
  }
}

void dequantize_q4_1(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t block = 0; block < out.size() / 32; ++block) {
    const uint8_t* in = &bytes[block * 20];
    const float d = load_f16(in), m = load_f16(in + 2);
    float* values = &out[block * 32];
    for (int j = 0; j < 16; ++j) {
      values[j] = d * static_cast<float>(in[4 + j] & 0x0F) + m;
      values[16 + j] = d * static_cast<float>(in[4 + j] >> 4) + m;
    }
  }
}

}  // namespace

const char* ggml_type_name(uint32_t type) {
  const TypeEntry* entry = find_type(type);
  return entry ? entry->name : "unknown";
}

GgmlBlock ggml_block(uint32_t type) {
  const TypeEntry* entry = find_type(type);
  return entry ? entry->block : GgmlBlock{};
}

bool ggml_type_readable(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
      return true;
    default:
      return false;
  }
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  uint32_t out;
  if (exponent == 0x1F) {  // ±∞ or NaN: the payload moves to the top of float's mantissa
    out = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 → 127
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else {  // ±0 or subnormal: mantissa · 2⁻²⁴, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(out);
}

void dequantize(uint32_t type, std::span<const uint8_t> bytes, std::span<float> out) {
  RECFORGE_CHECK(ggml_type_readable(type), "dequantize: ggml type ", ggml_type_name(type), " (",
                 type, ") is not one of F32, F16, BF16, Q8_0, Q4_0, Q4_1");
  const GgmlBlock block = ggml_block(type);
  RECFORGE_CHECK(out.size() % block.elements == 0, "dequantize: ", out.size(), " elements of ",
                 ggml_type_name(type), " are not whole blocks of ", block.elements);
  const uint64_t expected = out.size() / block.elements * block.bytes;
  RECFORGE_CHECK(bytes.size() == expected, "dequantize: ", out.size(), " elements of ",
                 ggml_type_name(type), " take ", expected, " bytes, got ", bytes.size());
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
      return dequantize_f32(bytes, out);
    case GgmlType::kF16:
      return dequantize_f16(bytes, out);
    case GgmlType::kBF16:
      return dequantize_bf16(bytes, out);
    case GgmlType::kQ8_0:
      return dequantize_q8_0(bytes, out);
    case GgmlType::kQ4_0:
      return dequantize_q4_0(bytes, out);
    default:
      return dequantize_q4_1(bytes, out);
  }
}

}  // namespace recforge
