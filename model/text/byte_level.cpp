#include "model/text/byte_level.h"

#include <array>

namespace recforge {
namespace {

bool stands_for_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
}

struct Alphabet {
  std::array<char32_t, 256> code_point_of_byte{};
  std::array<int16_t, 324> byte_of_code_point{};  // -1 where a code point spells no byte

  Alphabet() {
    byte_of_code_point.fill(-1);
    char32_t next_shifted = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
      code_point_of_byte[byte] = stands_for_itself(byte) ? char32_t(byte) : next_shifted++;
      byte_of_code_point[code_point_of_byte[byte]] = static_cast<int16_t>(byte);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet table;
  return table;
}

}  // namespace

char32_t byte_to_code_point(uint8_t byte) { return alphabet().code_point_of_byte[byte]; }

std::optional<uint8_t> code_point_to_byte(char32_t code_point) {
  const auto& table = alphabet().byte_of_code_point;
  if (code_point >= table.size() || table[code_point] < 0) return std::nullopt;
  return static_cast<uint8_t>(table[code_point]);
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(byte_to_code_point(static_cast<uint8_t>(c)), out);
  return out;
}

void append_utf8(char32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

int utf8_sequence_length(std::string_view text, char32_t& code_point) {
  if (text.empty()) return 0;
  const unsigned char lead = text[0];
  const int length = lead < 0x80           ? 1
                     : (lead >> 5) == 0x06 ? 2
                     : (lead >> 4) == 0x0E ? 3
                     : (lead >> 3) == 0x1E ? 4
                                           : 0;
  if (length == 0 || static_cast<size_t>(length) > text.size()) return 0;
  char32_t value = length == 1 ? lead : lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    const unsigned char next = text[k];
    if ((next & 0xC0) != 0x80) return 0;
    value = (value << 6) | (next & 0x3F);
  }
  constexpr char32_t kLowest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kLowest[length] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
    return 0;
  }
  code_point = value;
  return length;
}

}  // namespace recforge
