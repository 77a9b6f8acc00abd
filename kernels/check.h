// Error reporting shared by every layer: RECFORGE_CHECK throws recforge::Error with a message that
// names what was expected, so a bad shape or argument stops with one readable line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace recforge {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// concat("tensor ", name, " has ", n, " elements"): the message pieces as one string.
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

namespace detail {
template <typename... Args>
[[noreturn]] void fail(const char* file, int line, const Args&... args) {
  std::ostringstream message;
  (message << ... << args);
  message << " [" << file << ":" << line << "]";
  throw Error(message.str());
}
}  // namespace detail

// The offset of the first byte of `text` that is not part of a well-formed UTF-8 sequence
// (overlong forms, surrogates and code points past U+10FFFF included), or npos.
inline size_t invalid_utf8_offset(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = text[i];
    const int extra = c < 0x80           ? 0
                      : (c >> 5) == 0x06 ? 1
                      : (c >> 4) == 0x0E ? 2
                      : (c >> 3) == 0x1E ? 3
                                         : -1;  // a continuation byte or 0xF8..0xFF
    if (extra < 0 || i + extra >= text.size()) return i;
    uint32_t code = extra == 0 ? c : c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) {
      const unsigned char next = text[i + k];
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3F);
    }
    const uint32_t lowest[] = {0, 0x80, 0x800, 0x10000};
    if (code < lowest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += 1 + extra;
  }
  return std::string_view::npos;
}

// Throws unless `text` is UTF-8, naming `what` and the first bad byte. Paths and ids go into JSON
// files (checkpoints, stats, metrics), which hold UTF-8 only.
inline void require_utf8(std::string_view text, std::string_view what) {
  const size_t at = invalid_utf8_offset(text);
  if (at == std::string_view::npos) return;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[at]));
  throw Error(concat(what, ": \"", text, "\" is not valid UTF-8 (byte ", byte, " at offset ", at,
                     "); recforge records it in JSON files, which hold UTF-8 only: rename it"));
}

}  // namespace recforge

// RECFORGE_CHECK(n > 0, "batch must hold at least one token, got ", n);
#define RECFORGE_CHECK(condition, ...)                           \
  do {                                                           \
    if (!(condition)) {                                          \
      ::recforge::detail::fail(__FILE__, __LINE__, __VA_ARGS__); \
    }                                                            \
  } while (false)
