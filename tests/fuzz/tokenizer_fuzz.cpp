// libFuzzer target: arbitrary bytes as text for the byte-level BPE tokenizer and as a
// tokenizer.json file. A crash, a sanitizer report, any exception other than recforge::Error, a
// text that does not decode back to itself, or pre-tokenizer pieces that do not concatenate to
// the text is a bug. A tokenizer.json the reader accepts must build a Tokenizer or be refused with
// recforge::Error, and that tokenizer must encode the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kernels/check.h"
#include "model/text/pretokenizer.h"
#include "model/text/tokenizer.h"
#include "model/text/tokenizer_json.h"
#include "tests/model/text/tiny_vocab.h"

namespace {

const recforge::Tokenizer& tiny_tokenizer() {
  static const recforge::Tokenizer tokenizer(recforge::testing::tiny_spec());
  return tokenizer;
}

void check_pieces(std::string_view text) {
  for (auto pre : {recforge::PreTokenizer::kGpt2, recforge::PreTokenizer::kSmollm,
                   recforge::PreTokenizer::kLlama3, recforge::PreTokenizer::kQwen2}) {
    std::string joined;
    for (std::string_view piece : recforge::pre_tokenize(pre, text)) {
      if (piece.empty()) std::abort();
      joined += piece;
    }
    if (joined != text) std::abort();
  }
}

void check_round_trip(std::string_view text) {
  const recforge::Tokenizer& tokenizer = tiny_tokenizer();
  for (bool parse_special : {false, true}) {
    if (tokenizer.decode(tokenizer.encode(text, parse_special)) != text) std::abort();
  }
}

void check_json(std::string_view text) {
  try {
    recforge::Tokenizer tokenizer(recforge::tokenizer_spec_from_json_text(text, "fuzz.json"));
    tokenizer.decode(tokenizer.encode(text, true));
  } catch (const recforge::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_pieces(text);
  check_round_trip(text);
  check_json(text);
  return 0;
}
