// The GPU tests' side of the test support: each test runs an op on the CUDA backend and on the CPU
// backend (the reference) with the same random inputs, outputs poisoned with NaN bytes beforehand
// so an unwritten element fails, and compares with the relative error ‖cuda − cpu‖ / ‖cpu‖. A suite
// whose name holds "Gpu" carries the CTest label gpu and skips itself when no GPU is present
// (tests/CMakeLists.txt). bf16 arrays are widened to float before they are compared (a poisoned
// 0xFFFF element widens to NaN and fails).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/context.h"
#include "tests/support/bf16_values.h"

namespace recforge::testing {

// Skips every test of a suite when no GPU is present; otherwise holds one context per backend.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    cuda_ = Context::cuda();
  }
  Context cpu_ = Context::cpu();
  Context cuda_ = Context::cpu();  // replaced by a CUDA context in SetUp
};

template <typename Param>
class GpuTestWithParam : public GpuTest, public ::testing::WithParamInterface<Param> {};

// Concatenates the printed forms of its arguments: labels and test names.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream text;
  (text << ... << parts);
  return text.str();
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float low = -1.0f,
                                        float high = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(n);
  for (float& v : values) v = uniform(rng);
  return values;
}

inline std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t low, int32_t high) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> uniform(low, high);
  std::vector<int32_t> values(n);
  for (int32_t& v : values) v = uniform(rng);
  return values;
}

// One array on both backends with the same contents.
template <typename T>
struct Mirrored {
  Buffer<T> cpu, cuda;  // the CUDA copy exists only when a GPU does, so a fixture may hold
                        // Mirrored members that are built before its SetUp skips the test
  explicit Mirrored(std::span<const T> host)
      : cpu(Device::kCpu, host),
        cuda(cuda_device_count() > 0 ? Buffer<T>(Device::kCuda, host) : Buffer<T>()) {}
  explicit Mirrored(size_t size)
      : cpu(Device::kCpu, size),
        cuda(cuda_device_count() > 0 ? Buffer<T>(Device::kCuda, size) : Buffer<T>()) {}
  T* on(const Context& ctx) { return ctx.on_cuda() ? cuda.data() : cpu.data(); }
  // Fills both copies with NaN bytes.
  void poison() {
    fill_bytes(Device::kCpu, cpu.data(), 0xFF, cpu.bytes());
    fill_bytes(Device::kCuda, cuda.data(), 0xFF, cuda.bytes());
  }
};

template <typename T>
Mirrored<T> mirrored(const std::vector<T>& host) {
  return Mirrored<T>(std::span<const T>(host));
}

// ‖actual − expected‖₂ / ‖expected‖₂ in double (the absolute norm when expected is all zero); NaN
// when either side holds a NaN, so a poisoned element that was never written fails.
inline double relative_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  if (actual.size() != expected.size()) return NAN;
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    double d = static_cast<double>(actual[i]) - expected[i];
    diff += d * d;
    norm += static_cast<double>(expected[i]) * expected[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Prints and checks the relative error of two host arrays.
inline void expect_close(const std::string& name, const std::vector<float>& actual,
                         const std::vector<float>& expected, double tolerance) {
  const double error = relative_error(actual, expected);
  std::cout << "[ rel_err ] " << name << ": " << error << std::endl;
  EXPECT_LT(error, tolerance) << name;  // also fails on NaN
}

// Prints and checks the relative error of the CUDA copy against the CPU copy.
template <typename T>
void expect_close(const std::string& name, const Mirrored<T>& values, double tolerance) {
  expect_close(name, values.cuda.download(), values.cpu.download(), tolerance);
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

inline std::vector<float> widened(const std::vector<float>& values) { return values; }
inline std::vector<float> widened(const std::vector<bf16>& values) {
  return testing::to_float(values);
}

// Host values as storage type T (float, or bf16 rounded once).
template <typename T>
std::vector<T> stored_as(const std::vector<float>& values) {
  if constexpr (std::is_same_v<T, bf16>) {
    return testing::to_bf16(values);
  } else {
    return values;
  }
}

// Prints and checks ‖actual − expected‖ / ‖expected‖ of two host arrays (float or bf16).
template <typename A, typename B>
void expect_close(const std::string& name, const std::vector<A>& actual,
                  const std::vector<B>& expected, double tolerance) {
  expect_close(name, widened(actual), widened(expected), tolerance);
}

// The CUDA copy of a bf16 array against its CPU copy.
inline void expect_close(const std::string& name, const Mirrored<bf16>& values, double tolerance) {
  expect_close(name, values.cuda.download(), values.cpu.download(), tolerance);
}

}  // namespace recforge::testing
