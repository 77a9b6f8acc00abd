#include "model/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/check.h"
#include "model/durable_file.h"

namespace recforge {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

// Bytes per element of every dtype the format defines; 0 for an unknown name.
uint64_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"U16", 2},  {"I16", 2}, {"F16", 2}, {"BF16", 2},    {"U32", 4},
      {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8},     {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

uint64_t read_u64_le(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// The header length N read from the first 8 bytes, checked against the file's size.
uint64_t header_length(const uint8_t* first8, uint64_t file_bytes, const std::string& source) {
  uint64_t n = read_u64_le(first8);
  if (n > SafetensorsFile::kMaxHeaderBytes) {
    throw Error(concat(source, ": header length ", n, " exceeds the limit of ",
                       SafetensorsFile::kMaxHeaderBytes, " bytes"));
  }
  if (n > file_bytes - 8) {
    throw Error(concat(source, ": header length ", n, " runs past the end of the file (",
                       file_bytes, " bytes)"));
  }
  return n;
}

void check_too_short(uint64_t file_bytes, const std::string& source) {
  if (file_bytes < 8) {
    throw Error(
        concat(source, ": file is ", file_bytes, " bytes, shorter than the 8-byte header length"));
  }
}

}  // namespace

template <typename... Args>
void SafetensorsFile::fail(const Args&... args) const {
  throw Error(concat(source_, ": ", args...));
}

void write_safetensors(const std::filesystem::path& file,
                       const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const SafetensorsTensor& t : tensors) {
    int64_t count = 1;
    for (int64_t dim : t.shape) count *= dim;
    RECFORGE_CHECK(count == static_cast<int64_t>(t.data.size()), "write_safetensors: tensor '",
                   t.name, "' has shape ", shape_text(t.shape), " but ", t.data.size(), " values");
    RECFORGE_CHECK(!t.name.empty() && t.name != "__metadata__" && !header.contains(t.name),
                   "write_safetensors: tensor name '", t.name, "' is empty, reserved or repeated");
    uint64_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N is a multiple of 8: aligned data

  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(text.size() >> (8 * i));
  DurableFile out(file);
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
  for (const SafetensorsTensor& t : tensors) out.write(t.data.data(), t.data.size_bytes());
  out.finish();
}

SafetensorsFile SafetensorsFile::read(const std::filesystem::path& file) {
  const std::string source = file.string();
  std::error_code error;
  uint64_t file_bytes = std::filesystem::file_size(file, error);
  std::ifstream in(file, std::ios::binary);
  if (error || !in) throw Error(concat(source, ": cannot open the file"));
  check_too_short(file_bytes, source);
  uint8_t first8[8];
  in.read(reinterpret_cast<char*>(first8), 8);
  uint64_t n = header_length(first8, file_bytes, source);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  if (!in) throw Error(concat(source, ": the file ended early (was it changed while read?)"));

  SafetensorsFile result(source);
  const uint64_t data_bytes = file_bytes - 8 - n;
  result.parse_header(header, data_bytes);
  result.data_.resize((data_bytes + 3) / 4);
  in.read(reinterpret_cast<char*>(result.data_.data()), static_cast<std::streamsize>(data_bytes));
  if (!in) throw Error(concat(source, ": the file ended early (was it changed while read?)"));
  return result;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& source) {
  check_too_short(bytes.size(), source);
  uint64_t n = header_length(bytes.data(), bytes.size(), source);
  SafetensorsFile result(source);
  const uint64_t data_bytes = bytes.size() - 8 - n;
  result.parse_header(std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, n),
                      data_bytes);
  result.data_.resize((data_bytes + 3) / 4);
  std::memcpy(result.data_.data(), bytes.data() + 8 + n, data_bytes);
  return result;
}

void SafetensorsFile::parse_header(std::string_view text, uint64_t data_bytes) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("the header is not valid JSON (", e.what(), ")");
  }
  if (!header.is_object()) fail("the header is not a JSON object");
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail("__metadata__ is not a JSON object");
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string()) fail("__metadata__.", key, " is not a string");
        metadata_[key] = text_value.get<std::string>();
      }
    } else {
      parse_entry(name, value, data_bytes);
    }
  }
  check_tiling(data_bytes);
}

void SafetensorsFile::parse_entry(const std::string& name, const nlohmann::json& value,
                                  uint64_t data_bytes) {
  auto unsigned_list = [&](const char* field, size_t fixed_size) {
    auto it = value.find(field);
    if (it == value.end() || !it->is_array() || (fixed_size && it->size() != fixed_size)) {
      fail("tensor '", name, "': ", field, " is missing or not a list",
           fixed_size ? concat(" of ", fixed_size) : "");
    }
    std::vector<uint64_t> numbers;
    for (const nlohmann::json& x : *it) {
      if (!x.is_number_unsigned()) fail("tensor '", name, "': ", field, " holds ", x.dump());
      numbers.push_back(x.get<uint64_t>());
    }
    return numbers;
  };
  if (!value.is_object()) fail("tensor '", name, "' is not a JSON object");
  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) fail("tensor '", name, "': dtype is missing");
  Entry entry;
  entry.dtype = dtype->get<std::string>();
  const uint64_t element_bytes = dtype_bytes(entry.dtype);
  if (element_bytes == 0) fail("tensor '", name, "': unknown dtype '", entry.dtype, "'");

  uint64_t bytes = element_bytes;
  for (uint64_t dim : unsigned_list("shape", 0)) {
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(bytes, dim, &bytes)) {
      fail("tensor '", name, "': the shape's size overflows");
    }
    entry.shape.push_back(static_cast<int64_t>(dim));
  }
  std::vector<uint64_t> offsets = unsigned_list("data_offsets", 2);
  entry.begin = offsets[0];
  entry.end = offsets[1];
  if (entry.begin > entry.end || entry.end > data_bytes) {
    fail("tensor '", name, "': data_offsets [", entry.begin, ", ", entry.end,
         "] are not a range inside the data section of ", data_bytes, " bytes");
  }
  if (entry.end - entry.begin != bytes) {
    fail("tensor '", name, "': shape ", shape_text(entry.shape), " of ", entry.dtype, " needs ",
         bytes, " bytes, data_offsets hold ", entry.end - entry.begin);
  }
  entries_[name] = std::move(entry);
}

// The tensors, sorted by offset, must cover the data section exactly once.
void SafetensorsFile::check_tiling(uint64_t data_bytes) {
  for (const auto& [name, entry] : entries_) names_.push_back(name);
  std::sort(names_.begin(), names_.end(), [&](const std::string& a, const std::string& b) {
    const Entry &x = entries_.at(a), &y = entries_.at(b);
    return std::tie(x.begin, x.end) < std::tie(y.begin, y.end);
  });
  uint64_t covered = 0;
  for (const std::string& name : names_) {
    const Entry& e = entries_.at(name);
    if (e.begin < covered) fail("tensor '", name, "' overlaps the tensor before it");
    if (e.begin > covered) fail("gap of ", e.begin - covered, " bytes before tensor '", name, "'");
    covered = e.end;
  }
  if (covered != data_bytes) {
    fail("the data section has ", data_bytes - covered, " bytes after the last tensor");
  }
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail("no tensor named '", name, "'");
  return it->second;
}

const std::vector<int64_t>& SafetensorsFile::shape(const std::string& name) const {
  return entry(name).shape;
}

const std::string& SafetensorsFile::dtype(const std::string& name) const {
  return entry(name).dtype;
}

std::span<const float> SafetensorsFile::f32(const std::string& name) const {
  const Entry& e = entry(name);
  if (e.dtype != "F32") fail("tensor '", name, "' is ", e.dtype, ", expected F32");
  if (e.begin % 4 != 0)
    fail("tensor '", name, "' starts at byte ", e.begin, ", not 4-byte aligned");
  return {data_.data() + e.begin / 4, (e.end - e.begin) / 4};
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const Entry& e = entry(name);
  return {reinterpret_cast<const uint8_t*>(data_.data()) + e.begin, e.end - e.begin};
}

void require_finite(std::span<const float> values, const std::string& source,
                    const std::string& tensor) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw Error(concat(source, ": tensor '", tensor, "' holds ", values[i], " at element ", i,
                         ": the file is damaged or its training diverged; use an earlier "
                         "checkpoint"));
    }
  }
}

}  // namespace recforge
