#include "tests/support/reference.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "kernels/check.h"

#ifndef RECFORGE_SOURCE_DIR
#error "RECFORGE_SOURCE_DIR must point at the source tree"
#endif
#ifndef RECFORGE_PYTHON
#define RECFORGE_PYTHON "/usr/bin/python3"
#endif

namespace recforge::testing {

ReferenceCase::ReferenceCase(std::string script, std::string op)
    : script_(std::move(script)), op_(std::move(op)) {
  std::string pattern = (std::filesystem::temp_directory_path() / "recforge-ref-XXXXXX").string();
  RECFORGE_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot create a temporary directory");
  dir_ = pattern;
}

ReferenceCase::~ReferenceCase() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void ReferenceCase::put_scalar(const std::string& name, double value) {
  write_npy(dir_ / (name + ".npy"), std::span<const double>(&value, 1), {});
}

void ReferenceCase::run() {
  std::filesystem::path script =
      std::filesystem::path(RECFORGE_SOURCE_DIR) / "tests" / "reference" / script_;
  std::string command = std::string(RECFORGE_PYTHON) + " '" + script.string() + "' " + op_ + " '" +
                        dir_.string() + "' 2> '" + (dir_ / "stderr.txt").string() + "'";
  int status = std::system(command.c_str());
  if (status != 0) {
    std::ifstream err(dir_ / "stderr.txt");
    std::stringstream text;
    text << err.rdbuf();
    RECFORGE_CHECK(false, "reference script failed: ", command, "\n", text.str());
  }
}

std::vector<double> ReferenceCase::result(const std::string& name) const {
  return read_npy(dir_ / ("ref_" + name + ".npy")).as<double>();
}

namespace {
template <typename T>
double relative_error_impl(std::span<const T> out, std::span<const double> ref) {
  RECFORGE_CHECK(out.size() == ref.size(), "compared arrays differ in size: ", out.size(), " vs ",
                 ref.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < out.size(); ++i) {
    double d = static_cast<double>(out[i]) - ref[i];
    diff += d * d;
    norm += ref[i] * ref[i];
  }
  if (std::isnan(diff)) return std::numeric_limits<double>::infinity();
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}
}  // namespace

double relative_error(std::span<const float> out, std::span<const double> ref) {
  return relative_error_impl(out, ref);
}
double relative_error(std::span<const double> out, std::span<const double> ref) {
  return relative_error_impl(out, ref);
}

void report_error(const std::string& what, double error) {
  std::printf("[  rel_err ] %s: %.3e\n", what.c_str(), error);
  std::fflush(stdout);
}

uint64_t fresh_seed() {
  if (const char* fixed = std::getenv("RECFORGE_TEST_SEED"))
    return std::strtoull(fixed, nullptr, 10);
  uint64_t seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  std::printf("[     seed ] %llu (replay with RECFORGE_TEST_SEED)\n",
              static_cast<unsigned long long>(seed));
  return seed;
}

std::vector<int32_t> random_ints(std::mt19937_64& rng, size_t n, int32_t low, int32_t high) {
  std::uniform_int_distribution<int32_t> uniform(low, high - 1);
  std::vector<int32_t> out(n);
  for (int32_t& x : out) x = uniform(rng);
  return out;
}

const char* environment(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

}  // namespace recforge::testing
