// bf16 in the GPU tests: the comparisons of gpu_test_support.h for bf16 arrays, which are widened
// to float first (a poisoned 0xFFFF element widens to NaN and fails), and host inputs stored as
// either precision.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "tests/gpu/gpu_test_support.h"
#include "tests/support/bf16_values.h"

namespace recforge::gpu_test {

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

}  // namespace recforge::gpu_test
