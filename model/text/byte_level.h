// The byte-level alphabet of GPT-2's BPE (also Llama 3, SmolLM2, Qwen2): every byte 0..255 is one
// printable Unicode character, so a token's text is a string of such characters and any byte
// string has a spelling in it. Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves
// (as code points); the other 68 bytes, in increasing order, are U+0100, U+0101, ... (space is
// U+0120 'Ġ', newline U+010A 'Ċ').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace recforge {

// The code point that spells `byte`.
char32_t byte_to_code_point(uint8_t byte);
// The byte a code point spells, or nothing when it is not in the alphabet.
std::optional<uint8_t> code_point_to_byte(char32_t code_point);

// `bytes` spelled in the alphabet, as UTF-8.
std::string bytes_to_byte_level(std::string_view bytes);

// Appends the UTF-8 encoding of `code_point` (≤ U+10FFFF) to `out`.
void append_utf8(char32_t code_point, std::string& out);

// The length of the well-formed UTF-8 sequence at the start of `text` (1 to 4), or 0 when the
// first byte does not begin one (overlong forms, surrogates and code points past U+10FFFF are
// not well-formed). `code_point` receives its value.
int utf8_sequence_length(std::string_view text, char32_t& code_point);

}  // namespace recforge
