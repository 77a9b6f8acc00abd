// Helpers shared by the kernel reference tests: element-type conversion of the random inputs and
// the compare-print-assert step every comparison with a PyTorch reference ends with.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tests/support/reference.h"

namespace recforge::testing {

// The same values as element type T (the inputs are drawn as float, exact in double too).
template <typename T, typename U>
std::vector<T> convert(const std::vector<U>& values) {
  return std::vector<T>(values.begin(), values.end());
}

// An output of `size` elements of type T filled with NaN bytes (0xFFFF is a bf16 NaN too), so an
// element the kernel does not write fails the comparison.
template <typename T>
std::vector<T> poisoned(size_t size) {
  std::vector<T> values(size);
  std::memset(values.data(), 0xFF, size * sizeof(T));
  return values;
}

// Prints ‖out − ref‖/‖ref‖ under `what` and expects it below `tolerance`.
template <typename T>
void expect_close(const std::string& what, const std::vector<T>& out,
                  const std::vector<double>& ref, double tolerance) {
  double error = relative_error(std::span<const T>(out), ref);
  report_error(what, error);
  EXPECT_LT(error, tolerance) << what;
}

// Runs `body` on one thread of an active two-thread OpenMP region. A parallel region the body
// opens then gets a single thread (nesting is inactive by default) while omp_get_max_threads()
// still reports more: a kernel must size its work split by the team it actually gets.
template <typename F>
void run_inside_parallel_region(F&& body) {
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    body();
  }
}

// "float" or "double", to label the reported errors.
template <typename T>
constexpr const char* type_name() {
  return sizeof(T) == sizeof(float) ? "float" : "double";
}

// The file-name prefix of sub-case i of a reference run that checks several cases ("c<i>_").
inline std::string case_prefix(size_t i) { return "c" + std::to_string(i) + "_"; }

// A suite whose PyTorch reference cases are computed once, by `make`, and shared by its tests
// (starting the reference script costs more than the checks).
template <typename Case, std::vector<Case> (*make)()>
class SharedReferenceCases : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cases_) cases_ = std::make_unique<std::vector<Case>>(make());
  }
  static void TearDownTestSuite() { cases_.reset(); }

  static inline std::unique_ptr<std::vector<Case>> cases_;
};

}  // namespace recforge::testing
