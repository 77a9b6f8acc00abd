// libFuzzer target: arbitrary bytes as a safetensors file. recforge::Error is the expected answer
// to a bad file; a crash, a sanitizer report (a read outside the data), any other exception, or
// an accepted tensor whose values do not span exactly its shape is a bug. Every value of every
// accepted F32 tensor is read, so AddressSanitizer checks the spans.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kernels/check.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recforge::SafetensorsFile file =
        recforge::SafetensorsFile::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    for (const std::string& name : file.names()) {
      if (file.dtype(name) != "F32") continue;
      uint64_t count = 1;
      for (int64_t dim : file.shape(name)) count *= static_cast<uint64_t>(dim);
      std::span<const float> values = file.f32(name);
      if (values.size() != count) std::abort();
      volatile float sink = 0.0f;
      for (float x : values) sink = sink + x;
    }
  } catch (const recforge::Error&) {
  }
  return 0;
}
