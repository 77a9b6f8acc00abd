// GGUF model files (llama.cpp / ggml, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md),
// versions 2 and 3, little-endian:
//
//   "GGUF" u32 version, u64 tensor_count, u64 metadata_kv_count
//   metadata_kv_count × (string key, u32 value type, value)
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
//   padding to general.alignment (u32, default 32), then the data section
//
// A string is a u64 length and that many bytes; an array is a u32 element type, a u64 count and
// the elements (arrays of arrays are refused, as ggml does). ne[0] is a tensor's fastest-varying
// dimension: the row-major (PyTorch) shape is ne reversed. Offsets are bytes from the start of the
// data section and multiples of the alignment.
//
// The file is untrusted: open() and parse() check every length, count, type, shape and offset
// against the file before using it, so a damaged or hostile file is one recforge::Error line
// naming the file and what was found against what was expected, never a crash or an allocation
// larger than the file can justify. Tensors must lie inside the data section without overlapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/formats/dequantize.h"

namespace recforge {

enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u32", "string", "array", ...; "unknown" past f64.
const char* gguf_value_type_name(GgufValueType type);

// One metadata value: a scalar, or an array of scalars of one type. Integers keep their exact
// value (u64 and i64 included), floats are held as double (exact for f32).
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  // The type of a scalar, or of an array's elements.
  GgufValueType element_type() const { return element_type_; }
  bool is_array() const { return type_ == GgufValueType::kArray; }
  // Elements of an array; 1 for a scalar.
  size_t size() const;
  // "u32" for a scalar, "array of string" for an array.
  std::string type_text() const;

  // Element i (0 for a scalar) as each kind of value; an Error when the element type differs.
  bool is_integer() const;             // u8 .. i64; bool is not an integer
  bool is_float() const;               // f32 or f64
  int64_t as_int(size_t i = 0) const;  // signed integer types, and unsigned ones up to 2⁶³ − 1
  uint64_t as_uint(size_t i = 0) const;  // unsigned types, and signed ones ≥ 0
  double as_double(size_t i = 0) const;  // any integer or float type
  bool as_bool(size_t i = 0) const;
  const std::string& as_string(size_t i = 0) const;

 private:
  friend class GgufParser;
  friend class GgufFile;
  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  // One of these holds the elements, by element type: integers and bools as their bits (signed
  // ones sign-extended), floats widened to double, strings.
  std::vector<uint64_t> integers_;
  std::vector<double> floats_;
  std::vector<std::string> strings_;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] varies fastest
  uint32_t type = 0;        // a GgmlType id
  uint64_t offset = 0;      // from the start of the data section
  uint64_t bytes = 0;       // storage of all its blocks

  // Row-major (PyTorch) order: ne reversed.
  std::vector<int64_t> shape() const;
  int64_t elements() const;
};

class GgufFile {
 public:
  static constexpr uint64_t kDefaultAlignment = 32;

  // Maps `file` read-only and checks it all. The mapping lives as long as the GgufFile or a copy
  // of it; the file must not change while it is open.
  static GgufFile open(const std::filesystem::path& file);
  // The same checks on bytes in memory, copied: the result does not refer to `bytes`. `source`
  // names the file in messages.
  static GgufFile parse(std::span<const uint8_t> bytes, std::string source);

  const std::string& source() const { return source_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // the data section's first byte

  bool has(std::string_view key) const;
  // Keys in file order.
  const std::vector<std::string>& keys() const { return keys_; }
  // Throws "FILE: missing metadata key KEY" when absent.
  const GgufValue& value(std::string_view key) const;

  // Typed getters. A value of another type throws "FILE: metadata KEY: expected <type>, found
  // <type>", one out of range names the value and the range.
  std::string string(std::string_view key) const;
  uint64_t uint(std::string_view key) const;  // any integer type, ≥ 0
  double number(std::string_view key) const;  // any integer or float type
  bool boolean(std::string_view key) const;
  std::vector<std::string> string_array(std::string_view key) const;
  std::vector<double> number_array(std::string_view key) const;  // any integer or float elements
  std::vector<float> float_array(std::string_view key) const;    // f32 elements (exact)
  std::vector<int32_t> int_array(std::string_view key) const;    // integer elements in int32

  // In file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr when there is no tensor of that name.
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's values as float, row-major in shape() order, for the types F32, F16, BF16, Q8_0,
  // Q4_0 and Q4_1. Throws, naming the file and the tensor, for another type, for a tensor that is
  // not this file's, and at the first NaN or infinity.
  std::vector<float> read_f32(const GgufTensorInfo& tensor) const;
  std::vector<float> read_f32(std::string_view name) const;
  // The tensor's stored bytes, as they are.
  std::span<const uint8_t> raw(const GgufTensorInfo& tensor) const;

 private:
  friend class GgufParser;
  struct Storage;

  GgufFile() = default;

  const GgufTensorInfo& own_tensor(const GgufTensorInfo& tensor) const;
  const GgufValue& checked(std::string_view key, bool (*accepts)(const GgufValue&),
                           const char* expected) const;

  std::string source_;
  std::shared_ptr<const Storage> storage_;
  std::span<const uint8_t> bytes_;  // the whole file, inside storage_
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace recforge
