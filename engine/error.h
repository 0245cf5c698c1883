// One error type for the whole engine: every failure is a sieve::Error whose message names the
// op, file or flag and the reason, so the CLI can print it as one line and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sieve {

// The message with control characters escaped (a newline as "\n", others as "\xNN"): a file name
// or bytes quoted from a hostile file cannot break a message into several lines.
inline std::string one_line(const std::string& message) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  out.reserve(message.size());
  for (const char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

struct Error : std::runtime_error {
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}
};

// cat("conv2d: input ", shape, " ...") -> std::string, for building messages.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

}  // namespace sieve

// SIEVE_CHECK(cond, "op: reason ", value, ...): throws sieve::Error with the message when cond fails.
#define SIEVE_CHECK(cond, ...)                 \
  do {                                         \
    if (!(cond)) ::sieve::fail(__VA_ARGS__);   \
  } while (0)
