// libFuzzer target: arbitrary bytes as a GGUF file. recforge::Error is the expected answer to a
// bad file; a crash, a sanitizer report (a read outside the file), any other exception, or an
// accepted tensor whose values or bytes do not match its shape is a bug. Every metadata value is
// fetched through its typed getter and every tensor is read, so AddressSanitizer checks the spans.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "kernels/check.h"
#include "model/formats/gguf.h"

namespace {

void touch_metadata(const recforge::GgufFile& file) {
  for (const std::string& key : file.keys()) {
    try {
      const recforge::GgufValue& value = file.value(key);
      if (value.is_array() && value.element_type() == recforge::GgufValueType::kString) {
        if (file.string_array(key).size() != value.size()) std::abort();
      } else if (value.is_array()) {
        if (file.number_array(key).size() != value.size()) std::abort();
        file.int_array(key);
      } else if (value.type() == recforge::GgufValueType::kString) {
        file.string(key);
      } else if (value.type() == recforge::GgufValueType::kBool) {
        file.boolean(key);
      } else {
        file.number(key);
        file.uint(key);
      }
    } catch (const recforge::Error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recforge::GgufFile file =
        recforge::GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
    touch_metadata(file);
    for (const recforge::GgufTensorInfo& tensor : file.tensors()) {
      if (file.raw(tensor).size() != tensor.bytes) std::abort();
      try {
        std::vector<float> values = file.read_f32(tensor);
        if (values.size() != static_cast<size_t>(tensor.elements())) std::abort();
      } catch (const recforge::Error&) {
      }
    }
  } catch (const recforge::Error&) {
  }
  return 0;
}
