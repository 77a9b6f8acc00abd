// bf16 arrays in tests: float inputs rounded to bf16, and bf16 results widened to float so the
// float comparisons (relative errors, NaN checks) apply to them unchanged.
#pragma once

#include <vector>

#include "kernels/bf16.h"

namespace recforge::testing {

inline std::vector<bf16> to_bf16(const std::vector<float>& values) {
  std::vector<bf16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = float_to_bf16(values[i]);
  return out;
}

inline std::vector<float> to_float(const std::vector<bf16>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = bf16_to_float(values[i]);
  return out;
}

// The values a float array keeps when stored as bf16 (as floats).
inline std::vector<float> rounded_to_bf16(const std::vector<float>& values) {
  return to_float(to_bf16(values));
}

}  // namespace recforge::testing
