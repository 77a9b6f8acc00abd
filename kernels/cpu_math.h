// Math for the CPU backend's inner loops, written so the compiler vectorizes it (plain arithmetic
// and integer bit moves, no calls into libm).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace recforge::cpu {

// Σ a[i]·b[i] as a SIMD reduction: the vector lanes sum in a fixed order, so the result is the
// same on every run of a given build.
template <typename T>
T simd_dot(const T* a, const T* b, int n) {
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// exp(x) for float, within 2 ulp on [−87.3, 88.7]; 0 below (including −∞).
//   exp(x) = 2ⁿ · exp(r),  n = round(x·log₂e),  r = x − n·ln2 ∈ [−ln2/2, ln2/2]
// n is rounded by adding and subtracting 1.5·2²³ (exact for |x·log₂e| < 2²²). ln2 is split into a
// short high part and a low correction (Cody–Waite) so r is exact, and exp(r) is the Cephes
// degree-6 minimax polynomial.
inline float vexp(float x) {
  const float low = x < -87.33654f ? -87.33654f : x;        // comparisons, not fmin/fmax: those are
  const float clamped = low > 88.37626f ? 88.37626f : low;  // libm calls that block vectorizing
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float exp_r = p * r * r + r + 1.0f;
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;
  const float result = exp_r * std::bit_cast<float>(exponent_bits);
  return x < -87.33654f ? 0.0f : result;
}

inline double vexp(double x) { return std::exp(x); }

// Rows of a per-thread [rows, width] panel of T (the fused losses' logits) that stay in this
// thread's share of the last-level cache (8 MB), clamped to [4, 128].
template <typename T>
int panel_rows(int width) {
  constexpr size_t kPanelBytes = 8u << 20;
  const size_t rows = kPanelBytes / (static_cast<size_t>(width) * sizeof(T));
  return static_cast<int>(std::clamp<size_t>(rows, 4, 128));
}

}  // namespace recforge::cpu
