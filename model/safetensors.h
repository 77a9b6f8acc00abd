// safetensors files (https://github.com/huggingface/safetensors), the checkpoint format:
//
//   [N: u64 little-endian][N bytes: JSON header][data section]
//   header = {"<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
//             ..., "__metadata__": {"<key>": "<string>", ...}}
//
// Offsets are bytes from the data section's start; a tensor is row-major and its end - begin is
// product(shape) · sizeof(dtype); the tensors tile the data section exactly (no gap, no overlap).
// The writer emits F32 tensors and pads the header with spaces so the data starts 8-byte aligned.
//
// The reader treats a file as untrusted: the header length, every shape and every offset is
// checked against the file before it is used, so a corrupt or hostile file is a recforge::Error
// naming the file and the problem, never a crash or an allocation larger than the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <vector>

namespace recforge {

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::span<const float> data;  // product(shape) values, row-major
};

// "[12101, 64]": a shape as messages print it.
std::string shape_text(const std::vector<int64_t>& shape);

// Writes and fsyncs `file`. Tensors are stored in the given order.
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

  static SafetensorsFile read(const std::filesystem::path& file);
  // The same checks on a whole file held in memory; `source` names it in messages.
  static SafetensorsFile parse(std::span<const uint8_t> bytes, const std::string& source);

  const std::vector<std::string>& names() const { return names_; }  // in data-section order
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const std::vector<int64_t>& shape(const std::string& name) const;
  const std::string& dtype(const std::string& name) const;  // "F32", "BF16", "I64", ...
  // The values of an F32 tensor; an error for any other dtype.
  std::span<const float> f32(const std::string& name) const;
  // A tensor's stored bytes, whatever its dtype (BF16 and F16 weights of imported models).
  std::span<const uint8_t> bytes(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // bytes from the data section's start
  };

  explicit SafetensorsFile(std::string source) : source_(std::move(source)) {}
  // Parses and checks the JSON header against a data section of `data_bytes` bytes.
  void parse_header(std::string_view header, uint64_t data_bytes);
  void parse_entry(const std::string& name, const nlohmann::json& value, uint64_t data_bytes);
  void check_tiling(uint64_t data_bytes);
  const Entry& entry(const std::string& name) const;
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const;

  std::string source_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
  std::vector<float> data_;  // the data section: ⌈bytes / 4⌉ floats, so F32 tensors are aligned
};

// Throws naming `source` and `tensor` at the first NaN or infinity of `values`: weights or moments
// read from a file would otherwise train, score and recommend as garbage without a word.
void require_finite(std::span<const float> values, const std::string& source,
                    const std::string& tensor);

}  // namespace recforge
