// One error type for the whole engine: every failure is a sieve::Error whose message names the
// op, file or flag and the reason, so the CLI can print it as one line and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sieve {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
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
