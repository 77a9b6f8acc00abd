// A GGUF file written byte by byte the way the specification lays it out, independently of the
// reader (model/formats/gguf.h): the tests of the reader and of the model loaders build their
// files with it.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/formats/gguf.h"

namespace recforge::testing {

template <typename V>
void put(std::vector<uint8_t>& out, V value) {
  uint8_t bytes[sizeof(V)];
  std::memcpy(bytes, &value, sizeof(V));
  out.insert(out.end(), bytes, bytes + sizeof(V));
}

inline void put_string(std::vector<uint8_t>& out, std::string_view text) {
  put<uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}

// A GGUF file written the way the specification lays it out, independently of the reader. Tensor
// data follows the infos in order, each start padded to the alignment; the file ends with the last
// tensor's data, so every shorter prefix is truncated.
class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  template <typename V>
  GgufBuilder& scalar(std::string_view key, GgufValueType type, V value) {
    begin_pair(key, type);
    put(pairs_, value);
    return *this;
  }
  GgufBuilder& string(std::string_view key, std::string_view value) {
    begin_pair(key, GgufValueType::kString);
    put_string(pairs_, value);
    return *this;
  }
  template <typename V>
  GgufBuilder& array(std::string_view key, GgufValueType element, const std::vector<V>& values) {
    begin_array(key, element, values.size());
    for (V value : values) put(pairs_, value);
    return *this;
  }
  GgufBuilder& string_array(std::string_view key, const std::vector<std::string>& values) {
    begin_array(key, GgufValueType::kString, values.size());
    for (const std::string& value : values) put_string(pairs_, value);
    return *this;
  }
  // general.alignment, also used to lay the file out.
  GgufBuilder& alignment(uint32_t alignment) {
    layout_alignment_ = alignment;
    return scalar("general.alignment", GgufValueType::kU32, alignment);
  }
  // `offset` replaces the offset the layout gives the tensor in its info (its data stays put).
  GgufBuilder& tensor(std::string name, std::vector<uint64_t> ne, GgmlType type,
                      std::vector<uint8_t> data, std::optional<uint64_t> offset = std::nullopt) {
    tensors_.push_back(
        {std::move(name), std::move(ne), static_cast<uint32_t>(type), std::move(data), offset});
    return *this;
  }
  GgufBuilder& tensor_count(uint64_t count) {
    tensor_count_ = count;
    return *this;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    put(out, version_);
    put<uint64_t>(out, tensor_count_.value_or(tensors_.size()));
    put<uint64_t>(out, pair_count_);
    out.insert(out.end(), pairs_.begin(), pairs_.end());
    std::vector<uint8_t> data;
    for (const Tensor& t : tensors_) {
      data.resize(aligned(data.size()));
      put_string(out, t.name);
      put<uint32_t>(out, t.ne.size());
      for (uint64_t dim : t.ne) put(out, dim);
      put(out, t.type);
      put<uint64_t>(out, t.offset.value_or(data.size()));
      data.insert(data.end(), t.data.begin(), t.data.end());
    }
    if (!tensors_.empty()) out.resize(aligned(out.size()));
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
  GgufFile parse() const { return GgufFile::parse(bytes(), "test.gguf"); }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::vector<uint8_t> data;
    std::optional<uint64_t> offset;
  };

  void begin_pair(std::string_view key, GgufValueType type) {
    put_string(pairs_, key);
    put(pairs_, static_cast<uint32_t>(type));
    ++pair_count_;
  }
  void begin_array(std::string_view key, GgufValueType element, uint64_t count) {
    begin_pair(key, GgufValueType::kArray);
    put(pairs_, static_cast<uint32_t>(element));
    put(pairs_, count);
  }
  size_t aligned(size_t n) const {
    return layout_alignment_ > 1
               ? (n + layout_alignment_ - 1) / layout_alignment_ * layout_alignment_
               : n;
  }

  uint32_t version_;
  uint64_t layout_alignment_ = 32;
  std::vector<uint8_t> pairs_;
  uint64_t pair_count_ = 0;
  std::vector<Tensor> tensors_;
  std::optional<uint64_t> tensor_count_;
};

inline std::vector<uint8_t> f32_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> out;
  for (float x : values) put(out, x);
  return out;
}

inline std::vector<uint8_t> u16_bytes(const std::vector<uint16_t>& values) {
  std::vector<uint8_t> out;
  for (uint16_t x : values) put(out, x);
  return out;
}

}  // namespace recforge::testing
