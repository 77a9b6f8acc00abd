// libFuzzer target: arbitrary bytes as a run configuration. Up to the first NUL byte they are the
// YAML text; after it, one command-line override per line. recforge::Error is the expected answer
// to bad input; a crash, a sanitizer report, any other exception, or an accepted configuration
// that does not survive to_yaml -> parse_config unchanged is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/check.h"
#include "train/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string text = input.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string::npos) {
    std::string rest = input.substr(nul + 1);
    for (size_t start = 0; start <= rest.size();) {
      size_t end = rest.find('\n', start);
      if (end == std::string::npos) end = rest.size();
      overrides.push_back(rest.substr(start, end - start));
      start = end + 1;
    }
  }
  recforge::RunConfig config;
  try {
    config = recforge::parse_config(text, "fuzz.yaml", overrides);
  } catch (const recforge::Error&) {
    return 0;
  }
  recforge::RunConfig again =
      recforge::parse_config(recforge::to_yaml(config), "resolved.yaml", {});
  if (!(again == config)) std::abort();
  return 0;
}
