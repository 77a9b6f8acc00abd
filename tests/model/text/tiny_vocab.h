// A hand-made byte-level BPE vocabulary for the tokenizer tests: the 256 byte tokens (id = byte),
// then a few merges that spell "hello", " world" and "aa", then ChatML's control tokens.
#pragma once

#include <string>
#include <vector>

#include "model/text/byte_level.h"
#include "model/text/tokenizer.h"

namespace recforge::testing {

// The byte-level spelling of `bytes` ("Ġworld" for " world").
inline std::string spelled(std::string_view bytes) { return bytes_to_byte_level(bytes); }

inline TokenizerSpec tiny_spec() {
  TokenizerSpec spec;
  for (int byte = 0; byte < 256; ++byte) spec.tokens.push_back(spelled(std::string(1, char(byte))));
  spec.token_types.assign(256, static_cast<int32_t>(TokenType::kNormal));
  auto merge = [&](const std::string& left, const std::string& right) {
    spec.merges.push_back(spelled(left) + " " + spelled(right));
    spec.tokens.push_back(spelled(left + right));
    spec.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  };
  merge("l", "l");      // 256
  merge("h", "e");      // 257
  merge("he", "ll");    // 258
  merge("hell", "o");   // 259
  merge(" ", "w");      // 260
  merge("o", "r");      // 261
  merge(" w", "or");    // 262
  merge("l", "d");      // 263
  merge(" wor", "ld");  // 264
  merge("a", "a");      // 265
  auto special = [&](const std::string& text, TokenType type) {
    spec.tokens.push_back(text);
    spec.token_types.push_back(static_cast<int32_t>(type));
  };
  special("<|im_start|>", TokenType::kControl);  // 266
  special("<|im_end|>", TokenType::kControl);    // 267
  special("<|im", TokenType::kControl);          // 268
  special("<tool>", TokenType::kUserDefined);    // 269
  spec.bos = 266;
  spec.eos = 267;
  return spec;
}

constexpr int32_t kHello = 259, kSpaceWorld = 264, kAA = 265, kImStart = 266, kImEnd = 267,
                  kImPrefix = 268, kTool = 269;

}  // namespace recforge::testing
