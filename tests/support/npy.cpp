#include "tests/support/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "kernels/check.h"

namespace recforge::testing {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

template <typename T>
void write_array(const std::filesystem::path& path, std::span<const T> data,
                 const std::vector<int64_t>& shape, const char* dtype) {
  std::ostringstream header;
  header << "{'descr': '" << dtype << "', 'fortran_order': False, 'shape': (";
  for (int64_t dim : shape) header << dim << ", ";
  header << "), }";
  std::string text = header.str();
  size_t total = 10 + text.size() + 1;  // magic, version, length, text, newline
  text.append((64 - total % 64) % 64, ' ');
  text.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  RECFORGE_CHECK(out.good(), "cannot write ", path);
  out.write(kMagic, 6);
  out.put(1);
  out.put(0);
  uint16_t length = static_cast<uint16_t>(text.size());
  out.write(reinterpret_cast<const char*>(&length), 2);
  out << text;
  out.write(reinterpret_cast<const char*>(data.data()), data.size_bytes());
}

std::string field(const std::string& header, const std::string& key) {
  size_t at = header.find("'" + key + "'");
  RECFORGE_CHECK(at != std::string::npos, "npy header lacks '", key, "': ", header);
  return header.substr(header.find(':', at) + 1);
}

size_t element_size(const std::string& dtype) { return dtype == "<f8" ? 8 : 4; }

}  // namespace

int64_t NpyArray::size() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

template <typename T>
std::vector<T> NpyArray::as() const {
  std::vector<T> out(size());
  for (int64_t i = 0; i < size(); ++i) {
    const char* p = data.data() + i * element_size(dtype);
    if (dtype == "<f4") {
      float v;
      std::memcpy(&v, p, 4);
      out[i] = static_cast<T>(v);
    } else if (dtype == "<f8") {
      double v;
      std::memcpy(&v, p, 8);
      out[i] = static_cast<T>(v);
    } else {
      int32_t v;
      std::memcpy(&v, p, 4);
      out[i] = static_cast<T>(v);
    }
  }
  return out;
}
template std::vector<float> NpyArray::as<float>() const;
template std::vector<double> NpyArray::as<double>() const;
template std::vector<int32_t> NpyArray::as<int32_t>() const;

void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<int64_t>& shape) {
  write_array(path, data, shape, "<f4");
}
void write_npy(const std::filesystem::path& path, std::span<const double> data,
               const std::vector<int64_t>& shape) {
  write_array(path, data, shape, "<f8");
}
void write_npy(const std::filesystem::path& path, std::span<const int32_t> data,
               const std::vector<int64_t>& shape) {
  write_array(path, data, shape, "<i4");
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RECFORGE_CHECK(in.good(), "cannot read ", path);
  char magic[6];
  in.read(magic, 6);
  RECFORGE_CHECK(std::memcmp(magic, kMagic, 6) == 0, path, " is not an .npy file");
  char version[2];
  in.read(version, 2);
  RECFORGE_CHECK(version[0] == 1, path, ": only .npy format 1.0 is supported");
  uint16_t length;
  in.read(reinterpret_cast<char*>(&length), 2);
  std::string header(length, '\0');
  in.read(header.data(), length);

  NpyArray array;
  std::string descr = field(header, "descr");
  array.dtype = descr.substr(descr.find('\'') + 1, 3);
  RECFORGE_CHECK(array.dtype == "<f4" || array.dtype == "<f8" || array.dtype == "<i4", path,
                 ": unsupported dtype ", array.dtype);
  RECFORGE_CHECK(field(header, "fortran_order").find("False") != std::string::npos, path,
                 ": Fortran order is not supported");
  std::string shape = field(header, "shape");
  shape = shape.substr(shape.find('(') + 1, shape.find(')') - shape.find('(') - 1);
  std::istringstream dims(shape);
  std::string dim;
  while (std::getline(dims, dim, ',')) {
    if (dim.find_first_not_of(' ') != std::string::npos) array.shape.push_back(std::stoll(dim));
  }
  array.data.resize(array.size() * element_size(array.dtype));
  in.read(array.data.data(), array.data.size());
  RECFORGE_CHECK(in.gcount() == static_cast<std::streamsize>(array.data.size()), path,
                 ": truncated data");
  return array;
}

}  // namespace recforge::testing
