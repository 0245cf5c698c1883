// Shared by the libFuzzer targets: every reader must either succeed or throw sieve::Error (one
// clear line). Any other exception escapes and libFuzzer reports it as a crash, as it reports
// memory errors, undefined behaviour (the sanitizers), leaks, timeouts and out-of-memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace sieve::fuzz {

inline std::string_view bytes_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs f, swallowing only sieve::Error, whose message must be one non-empty line.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string_view what = e.what();
    if (what.empty() || what.find('\n') != std::string_view::npos) {
      std::fprintf(stderr, "fuzz: an error message that is not one line: [%s]\n", e.what());
      __builtin_trap();
    }
  }
}

}  // namespace sieve::fuzz
