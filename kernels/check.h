// Error reporting shared by every layer: RECFORGE_CHECK throws recforge::Error with a message that
// names what was expected, so a bad shape or argument stops with one readable line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

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

}  // namespace recforge

// RECFORGE_CHECK(n > 0, "batch must hold at least one token, got ", n);
#define RECFORGE_CHECK(condition, ...)                           \
  do {                                                           \
    if (!(condition)) {                                          \
      ::recforge::detail::fail(__FILE__, __LINE__, __VA_ARGS__); \
    }                                                            \
  } while (false)
