#include "model/formats/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "kernels/check.h"

namespace recforge {

static_assert(std::endian::native == std::endian::little,
              "GGUF files are little-endian; a big-endian host would need byte swaps");

namespace {

constexpr uint32_t kMaxDims = 4;
constexpr size_t kMaxQuotedChars = 80;

// A name or key from the file as messages print it: quoted, control and non-ASCII bytes as \xNN,
// cut after kMaxQuotedChars so a hostile name cannot flood a message.
std::string printable(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kMaxQuotedChars; ++i) {
    const unsigned char c = text[i];
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  if (text.size() > kMaxQuotedChars) out += "...";
  return out + "'";
}

std::string ne_text(const std::vector<int64_t>& ne) {
  std::string out = "[";
  for (size_t i = 0; i < ne.size(); ++i) out += (i ? ", " : "") + std::to_string(ne[i]);
  return out + "]";
}

bool is_integer_type(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kU16:
    case GgufValueType::kI16:
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kU64:
    case GgufValueType::kI64:
      return true;
    default:
      return false;
  }
}

bool is_signed_type(GgufValueType type) {
  return type == GgufValueType::kI8 || type == GgufValueType::kI16 || type == GgufValueType::kI32 ||
         type == GgufValueType::kI64;
}

bool is_float_type(GgufValueType type) {
  return type == GgufValueType::kF32 || type == GgufValueType::kF64;
}

// Bytes of a scalar of `type` in the file; strings take at least their 8-byte length.
uint64_t stored_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    default:
      return 8;
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static const char* const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto index = static_cast<uint32_t>(type);
  return index < std::size(names) ? names[index] : "unknown";
}

// --- GgufValue -----------------------------------------------------------------------------------

size_t GgufValue::size() const {
  if (element_type_ == GgufValueType::kString) return strings_.size();
  return is_float_type(element_type_) ? floats_.size() : integers_.size();
}

std::string GgufValue::type_text() const {
  const char* element = gguf_value_type_name(element_type_);
  return is_array() ? concat("array of ", element) : std::string(element);
}

bool GgufValue::is_integer() const { return is_integer_type(element_type_); }
bool GgufValue::is_float() const { return is_float_type(element_type_); }

int64_t GgufValue::as_int(size_t i) const {
  RECFORGE_CHECK(is_integer() && i < size(), "GGUF value of type ", type_text(),
                 ": no integer element ", i);
  const uint64_t bits = integers_[i];
  RECFORGE_CHECK(is_signed_type(element_type_) ||
                     bits <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                 "GGUF value ", bits, " does not fit int64");
  return static_cast<int64_t>(bits);
}

uint64_t GgufValue::as_uint(size_t i) const {
  RECFORGE_CHECK(is_integer() && i < size(), "GGUF value of type ", type_text(),
                 ": no integer element ", i);
  const uint64_t bits = integers_[i];
  RECFORGE_CHECK(!is_signed_type(element_type_) || static_cast<int64_t>(bits) >= 0, "GGUF value ",
                 static_cast<int64_t>(bits), " is negative");
  return bits;
}

double GgufValue::as_double(size_t i) const {
  RECFORGE_CHECK((is_integer() || is_float()) && i < size(), "GGUF value of type ", type_text(),
                 ": no number element ", i);
  if (is_float()) return floats_[i];
  return is_signed_type(element_type_) ? static_cast<double>(static_cast<int64_t>(integers_[i]))
                                       : static_cast<double>(integers_[i]);
}

bool GgufValue::as_bool(size_t i) const {
  RECFORGE_CHECK(element_type_ == GgufValueType::kBool && i < size(), "GGUF value of type ",
                 type_text(), ": no bool element ", i);
  return integers_[i] != 0;
}

const std::string& GgufValue::as_string(size_t i) const {
  RECFORGE_CHECK(element_type_ == GgufValueType::kString && i < size(), "GGUF value of type ",
                 type_text(), ": no string element ", i);
  return strings_[i];
}

// --- GgufTensorInfo ------------------------------------------------------------------------------

std::vector<int64_t> GgufTensorInfo::shape() const { return {ne.rbegin(), ne.rend()}; }

int64_t GgufTensorInfo::elements() const {
  return std::accumulate(ne.begin(), ne.end(), int64_t{1}, std::multiplies<>());
}

// --- Parsing -------------------------------------------------------------------------------------

struct GgufFile::Storage {
  std::vector<uint8_t> copy;
  void* mapping = nullptr;
  size_t mapped_bytes = 0;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (mapping) munmap(mapping, mapped_bytes);
  }
};

// Reads a GgufFile's bytes_ front to back into its fields, checking as it goes.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& file) : file_(file), bytes_(file.bytes_) {}

  void run() {
    read_header();
    const uint64_t tensor_count = read<uint64_t>("the tensor count");
    const uint64_t kv_count = read<uint64_t>("the metadata count");
    // The least a key-value pair (8-byte key length, type, 1-byte value) and a tensor info (name
    // length, n_dims, one dimension, type, offset) can take.
    check_count(kv_count, 8 + 4 + 1, "metadata key-value pairs");
    check_count(tensor_count, 8 + 4 + 8 + 4 + 8, "tensor infos");
    for (uint64_t i = 0; i < kv_count; ++i) read_key_value();
    read_alignment();
    for (uint64_t i = 0; i < tensor_count; ++i) read_tensor_info();
    file_.data_offset_ = (position_ + file_.alignment_ - 1) / file_.alignment_ * file_.alignment_;
    context_ = "the tensor data";
    for (const GgufTensorInfo& tensor : file_.tensors_) place(tensor);
    check_overlaps();
  }

 private:
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    throw Error(concat(file_.source_, ": ", args...));
  }

  uint64_t remaining() const { return bytes_.size() - position_; }

  void need(uint64_t count, std::string_view what) const {
    if (count > remaining()) {
      fail("truncated in ", context_, ": ", what, " needs ", count, " bytes at byte ", position_,
           " but the file has ", bytes_.size(), " bytes");
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what) {
    const uint64_t length = read<uint64_t>(what);
    need(length, what);
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return text;
  }

  // A count of items that take at least `least_bytes` each must fit in the rest of the file.
  void check_count(uint64_t count, uint64_t least_bytes, std::string_view what) const {
    if (count > remaining() / least_bytes) {
      fail(context_, ": ", count, " ", what, " need at least ", least_bytes, " bytes each but ",
           remaining(), " bytes follow byte ", position_);
    }
  }

  void read_header() {
    context_ = "the header";
    if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0) {
      const size_t shown = std::min<size_t>(bytes_.size(), 4);
      fail("not a GGUF file: it starts with ",
           printable(std::string_view(reinterpret_cast<const char*>(bytes_.data()), shown)),
           ", expected 'GGUF'");
    }
    position_ = 4;
    const uint32_t version = read<uint32_t>("the version");
    if (version == 1) {
      fail("GGUF version 1 is not supported (recforge reads versions 2 and 3): ",
           "convert the file with a current llama.cpp");
    }
    if (version == 0x02000000 || version == 0x03000000) {
      fail("GGUF version field reads ", version, ": a big-endian file, which recforge does not ",
           "read (versions 2 and 3, little-endian)");
    }
    if (version != 2 && version != 3) {
      fail("unsupported GGUF version ", version, " (recforge reads versions 2 and 3)");
    }
    file_.version_ = version;
  }

  void read_key_value() {
    context_ = concat("metadata pair ", file_.keys_.size());
    std::string key = read_string("the key");
    context_ = concat("metadata key ", printable(key));
    if (file_.metadata_.count(key)) fail("metadata key ", printable(key), " appears twice");
    const auto type = static_cast<GgufValueType>(read<uint32_t>("the value type"));
    GgufValue value;
    value.type_ = type;
    if (type == GgufValueType::kArray) {
      const auto element_type = static_cast<GgufValueType>(read<uint32_t>("the element type"));
      if (element_type == GgufValueType::kArray) {
        fail("metadata key ", printable(key),
             " is an array of arrays, which recforge does not read");
      }
      check_value_type(element_type);
      const uint64_t count = read<uint64_t>("the array length");
      check_count(count, stored_bytes(element_type), "array elements");
      value.element_type_ = element_type;
      for (uint64_t i = 0; i < count; ++i) read_element(value);
    } else {
      check_value_type(type);
      value.element_type_ = type;
      read_element(value);
    }
    file_.keys_.push_back(key);
    file_.metadata_.emplace(std::move(key), std::move(value));
  }

  void check_value_type(GgufValueType type) const {
    if (static_cast<uint32_t>(type) > static_cast<uint32_t>(GgufValueType::kF64)) {
      fail(context_, ": value type ", static_cast<uint32_t>(type), " is not a GGUF type (0 to 12)");
    }
  }

  // Appends one element of value.element_type_ to `value`.
  void read_element(GgufValue& value) {
    switch (value.element_type_) {
      case GgufValueType::kU8:
        return value.integers_.push_back(read<uint8_t>("a u8"));
      case GgufValueType::kI8:
        return push_signed(value, read<int8_t>("an i8"));
      case GgufValueType::kU16:
        return value.integers_.push_back(read<uint16_t>("a u16"));
      case GgufValueType::kI16:
        return push_signed(value, read<int16_t>("an i16"));
      case GgufValueType::kU32:
        return value.integers_.push_back(read<uint32_t>("a u32"));
      case GgufValueType::kI32:
        return push_signed(value, read<int32_t>("an i32"));
      case GgufValueType::kU64:
        return value.integers_.push_back(read<uint64_t>("a u64"));
      case GgufValueType::kI64:
        return push_signed(value, read<int64_t>("an i64"));
      case GgufValueType::kF32:
        return value.floats_.push_back(read<float>("an f32"));
      case GgufValueType::kF64:
        return value.floats_.push_back(read<double>("an f64"));
      case GgufValueType::kBool:
        return value.integers_.push_back(read_bool());
      default:
        return value.strings_.push_back(read_string("a string"));
    }
  }

  static void push_signed(GgufValue& value, int64_t x) {
    value.integers_.push_back(static_cast<uint64_t>(x));
  }

  bool read_bool() {
    const uint8_t byte = read<uint8_t>("a bool");
    if (byte > 1) fail(context_, ": a bool holds ", int{byte}, ", expected 0 or 1");
    return byte == 1;
  }

  void read_alignment() {
    auto it = file_.metadata_.find("general.alignment");
    if (it == file_.metadata_.end()) return;
    const GgufValue& value = it->second;
    if (value.type() != GgufValueType::kU32) {
      fail("metadata general.alignment: expected u32, found ", value.type_text());
    }
    const uint64_t alignment = value.as_uint();
    if (!std::has_single_bit(alignment)) {
      fail("metadata general.alignment is ", alignment, ", expected a power of two");
    }
    file_.alignment_ = alignment;
  }

  void read_tensor_info() {
    context_ = concat("tensor info ", file_.tensors_.size());
    GgufTensorInfo tensor;
    tensor.name = read_string("the name");
    context_ = concat("tensor ", printable(tensor.name));
    if (file_.tensor_index_.count(tensor.name)) {
      fail("tensor ", printable(tensor.name), " appears twice");
    }
    const uint32_t n_dims = read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > kMaxDims) {
      fail(context_, ": n_dims is ", n_dims, ", expected 1 to ", kMaxDims);
    }
    for (uint32_t i = 0; i < n_dims; ++i) tensor.ne.push_back(read_dim(i));
    tensor.type = read<uint32_t>("the ggml type");
    tensor.offset = read<uint64_t>("the data offset");
    tensor.bytes = storage_bytes(tensor);
    file_.tensor_index_.emplace(tensor.name, file_.tensors_.size());
    file_.tensors_.push_back(std::move(tensor));
  }

  int64_t read_dim(uint32_t i) {
    const uint64_t dim = read<uint64_t>("a dimension");
    if (dim < 1 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(context_, ": ne[", i, "] is ", dim, ", expected 1 to 2^63 - 1");
    }
    return static_cast<int64_t>(dim);
  }

  // Bytes of the tensor's blocks, with its type, its ne[0] and every product checked.
  uint64_t storage_bytes(const GgufTensorInfo& tensor) const {
    const GgmlBlock block = ggml_block(tensor.type);
    if (block.elements == 0) fail(context_, ": unknown ggml type ", tensor.type);
    const char* type = ggml_type_name(tensor.type);
    if (tensor.ne[0] % block.elements != 0) {
      fail(context_, ": ne[0] = ", tensor.ne[0], " is not a multiple of the ", block.elements,
           " elements of a ", type, " block");
    }
    int64_t elements = 1;
    uint64_t bytes = block.bytes;
    for (size_t i = 0; i < tensor.ne.size(); ++i) {
      const uint64_t units = static_cast<uint64_t>(tensor.ne[i]) / (i == 0 ? block.elements : 1);
      if (__builtin_mul_overflow(elements, tensor.ne[i], &elements) ||
          __builtin_mul_overflow(bytes, units, &bytes)) {
        fail(context_, ": ne ", ne_text(tensor.ne), " of ", type,
             " overflows 64-bit element or byte counts");
      }
    }
    return bytes;
  }

  // The tensor's data must be aligned and inside the file.
  void place(const GgufTensorInfo& tensor) const {
    const std::string name = printable(tensor.name);
    if (tensor.offset % file_.alignment_ != 0) {
      fail("tensor ", name, ": data offset ", tensor.offset, " is not a multiple of the alignment ",
           file_.alignment_);
    }
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(file_.data_offset_, tensor.offset, &begin) ||
        __builtin_add_overflow(begin, tensor.bytes, &end)) {
      fail("tensor ", name, ": data offset ", tensor.offset, " + ", tensor.bytes,
           " bytes overflows 64 bits");
    }
    if (end > bytes_.size()) {
      fail("tensor ", name, ": data ends at byte ", end, " but the file has ", bytes_.size(),
           " bytes");
    }
  }

  void check_overlaps() const {
    std::vector<const GgufTensorInfo*> order;
    for (const GgufTensorInfo& tensor : file_.tensors_) order.push_back(&tensor);
    std::sort(order.begin(), order.end(), [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
      return a->offset < b->offset;
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const GgufTensorInfo &before = *order[i - 1], &after = *order[i];
      if (before.offset + before.bytes > after.offset) {
        fail("tensor ", printable(after.name), " (data offset ", after.offset, ") overlaps tensor ",
             printable(before.name), " (data offsets ", before.offset, " to ",
             before.offset + before.bytes, ")");
      }
    }
  }

  GgufFile& file_;
  std::span<const uint8_t> bytes_;
  uint64_t position_ = 0;
  std::string context_;  // what is being read, for messages
};

// --- GgufFile ------------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::filesystem::path& file) {
  GgufFile result;
  result.source_ = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(concat(result.source_, ": cannot open: ", std::strerror(errno)));
  auto storage = std::make_shared<Storage>();
  struct stat info {};
  const bool regular = fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  if (regular && info.st_size > 0) {
    storage->mapped_bytes = static_cast<size_t>(info.st_size);
    void* mapping = mmap(nullptr, storage->mapped_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    storage->mapping = mapping == MAP_FAILED ? nullptr : mapping;
  }
  const int map_errno = errno;  // of fstat or mmap, whichever failed
  ::close(fd);
  if (!regular) throw Error(concat(result.source_, ": not a regular file"));
  if (info.st_size > 0 && !storage->mapping) {
    throw Error(concat(result.source_, ": cannot map the file: ", std::strerror(map_errno)));
  }
  result.bytes_ = {static_cast<const uint8_t*>(storage->mapping), storage->mapped_bytes};
  result.storage_ = std::move(storage);
  GgufParser(result).run();
  return result;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, std::string source) {
  GgufFile result;
  result.source_ = std::move(source);
  auto storage = std::make_shared<Storage>();
  storage->copy.assign(bytes.begin(), bytes.end());
  result.bytes_ = storage->copy;
  result.storage_ = std::move(storage);
  GgufParser(result).run();
  return result;
}

bool GgufFile::has(std::string_view key) const { return metadata_.find(key) != metadata_.end(); }

const GgufValue& GgufFile::value(std::string_view key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) throw Error(concat(source_, ": missing metadata key ", key));
  return it->second;
}

const GgufValue& GgufFile::checked(std::string_view key, bool (*accepts)(const GgufValue&),
                                   const char* expected) const {
  const GgufValue& found = value(key);
  if (!accepts(found)) {
    throw Error(concat(source_, ": metadata ", key, ": expected ", expected, ", found ",
                       found.type_text()));
  }
  return found;
}

std::string GgufFile::string(std::string_view key) const {
  return checked(
             key, [](const GgufValue& v) { return v.type() == GgufValueType::kString; }, "string")
      .as_string();
}

uint64_t GgufFile::uint(std::string_view key) const {
  const GgufValue& found = checked(
      key, [](const GgufValue& v) { return !v.is_array() && v.is_integer(); }, "an integer");
  if (is_signed_type(found.type()) && found.as_int() < 0) {
    throw Error(concat(source_, ": metadata ", key, ": expected a non-negative integer, found ",
                       found.as_int()));
  }
  return found.as_uint();
}

double GgufFile::number(std::string_view key) const {
  return checked(
             key,
             [](const GgufValue& v) { return !v.is_array() && (v.is_integer() || v.is_float()); },
             "a number")
      .as_double();
}

bool GgufFile::boolean(std::string_view key) const {
  return checked(
             key, [](const GgufValue& v) { return v.type() == GgufValueType::kBool; }, "bool")
      .as_bool();
}

std::vector<std::string> GgufFile::string_array(std::string_view key) const {
  const GgufValue& found = checked(
      key,
      [](const GgufValue& v) { return v.is_array() && v.element_type() == GgufValueType::kString; },
      "array of string");
  return found.strings_;
}

std::vector<double> GgufFile::number_array(std::string_view key) const {
  const GgufValue& found = checked(
      key, [](const GgufValue& v) { return v.is_array() && (v.is_integer() || v.is_float()); },
      "array of numbers");
  std::vector<double> out(found.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = found.as_double(i);
  return out;
}

std::vector<float> GgufFile::float_array(std::string_view key) const {
  const GgufValue& found = checked(
      key,
      [](const GgufValue& v) { return v.is_array() && v.element_type() == GgufValueType::kF32; },
      "array of f32");
  return {found.floats_.begin(), found.floats_.end()};
}

std::vector<int32_t> GgufFile::int_array(std::string_view key) const {
  const GgufValue& found = checked(
      key, [](const GgufValue& v) { return v.is_array() && v.is_integer(); }, "array of integers");
  std::vector<int32_t> out(found.size());
  const bool is_signed = is_signed_type(found.element_type());
  for (size_t i = 0; i < out.size(); ++i) {
    const uint64_t bits = found.integers_[i];
    const bool fits = is_signed ? static_cast<int64_t>(bits) == static_cast<int32_t>(bits)
                                : bits <= static_cast<uint64_t>(INT32_MAX);
    if (!fits) {
      throw Error(concat(source_, ": metadata ", key, ": element ", i, " is ",
                         is_signed ? concat(static_cast<int64_t>(bits)) : concat(bits),
                         ", outside the int32 range"));
    }
    out[i] = static_cast<int32_t>(bits);
  }
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::own_tensor(const GgufTensorInfo& tensor) const {
  const GgufTensorInfo* own = find_tensor(tensor.name);
  if (!own) throw Error(concat(source_, ": no tensor named ", printable(tensor.name)));
  return *own;
}

std::span<const uint8_t> GgufFile::raw(const GgufTensorInfo& tensor) const {
  const GgufTensorInfo& own = own_tensor(tensor);
  return bytes_.subspan(data_offset_ + own.offset, own.bytes);
}

std::vector<float> GgufFile::read_f32(const GgufTensorInfo& tensor) const {
  const GgufTensorInfo& own = own_tensor(tensor);
  if (!ggml_type_readable(own.type)) {
    throw Error(
        concat(source_, ": tensor ", printable(own.name), " has ggml type ",
               ggml_type_name(own.type), " (", own.type,
               "), which recforge cannot read (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1)"));
  }
  std::vector<float> values(static_cast<size_t>(own.elements()));
  dequantize(own.type, raw(own), values);
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw Error(concat(source_, ": tensor ", printable(own.name), " (", ggml_type_name(own.type),
                         ") holds ", values[i], " at element ", i, ": the file is damaged"));
    }
  }
  return values;
}

std::vector<float> GgufFile::read_f32(std::string_view name) const {
  const GgufTensorInfo* tensor = find_tensor(name);
  if (!tensor) throw Error(concat(source_, ": no tensor named ", printable(name)));
  return read_f32(*tensor);
}

}  // namespace recforge
