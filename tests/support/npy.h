// Minimal reader and writer of NumPy .npy files (format version 1.0, little-endian, C order) for
// the float32, float64 and int32 arrays exchanged with the PyTorch reference scripts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace recforge::testing {

struct NpyArray {
  std::string dtype;  // "<f4", "<f8" or "<i4"
  std::vector<int64_t> shape;
  std::vector<char> data;

  int64_t size() const;
  // The elements converted to T (float, double or int32_t).
  template <typename T>
  std::vector<T> as() const;
};

void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<int64_t>& shape);
void write_npy(const std::filesystem::path& path, std::span<const double> data,
               const std::vector<int64_t>& shape);
void write_npy(const std::filesystem::path& path, std::span<const int32_t> data,
               const std::vector<int64_t>& shape);
NpyArray read_npy(const std::filesystem::path& path);

}  // namespace recforge::testing
