// Exchange with the PyTorch reference scripts: a test writes its fresh random inputs as .npy files
// into a temporary directory, runs `/usr/bin/python3 tests/reference/<script>.py <op> <dir>`, and
// reads back the reference outputs the script wrote there (named ref_<name>.npy).
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tests/support/npy.h"

namespace recforge::testing {

class ReferenceCase {
 public:
  // `script` is a file name under tests/reference/, `op` the function it computes.
  ReferenceCase(std::string script, std::string op);
  ~ReferenceCase();
  ReferenceCase(const ReferenceCase&) = delete;
  ReferenceCase& operator=(const ReferenceCase&) = delete;

  template <typename T>
  void put(const std::string& name, std::span<const T> data, const std::vector<int64_t>& shape) {
    write_npy(dir_ / (name + ".npy"), data, shape);
  }
  template <typename T>
  void put(const std::string& name, const std::vector<T>& data, const std::vector<int64_t>& shape) {
    put(name, std::span<const T>(data), shape);
  }
  // A scalar argument (stored as a 0-d float64 array).
  void put_scalar(const std::string& name, double value);
  // Runs the script; throws with its stderr when it fails.
  void run();
  // The reference output ref_<name>, in float64.
  std::vector<double> result(const std::string& name) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::string script_, op_;
  std::filesystem::path dir_;
};

// ‖out − ref‖₂ / ‖ref‖₂ (the absolute error ‖out − ref‖₂ when ref is all zeros).
double relative_error(std::span<const float> out, std::span<const double> ref);
double relative_error(std::span<const double> out, std::span<const double> ref);
// Prints "[  rel_err ] <what>: <err>" so every run shows its measured errors.
void report_error(const std::string& what, double error);

// The value of an environment variable, or null when it is unset or empty (the model file and the
// Python interpreters the reference tests need are named this way; without them they skip).
const char* environment(const char* name);

// A seed that differs between runs (printed, so a failure can be replayed with RECFORGE_TEST_SEED).
uint64_t fresh_seed();

template <typename T>
std::vector<T> random_normal(std::mt19937_64& rng, size_t n, double stddev = 1.0) {
  std::normal_distribution<double> normal(0.0, stddev);
  std::vector<T> out(n);
  for (T& x : out) x = static_cast<T>(normal(rng));
  return out;
}

std::vector<int32_t> random_ints(std::mt19937_64& rng, size_t n, int32_t low, int32_t high);

}  // namespace recforge::testing
