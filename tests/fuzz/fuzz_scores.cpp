// External scores files (sieve defend --scores): the first byte picks .npy or .safetensors and
// whether the length must be 3, the rest is the file.
#include "defense/external_scores.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const std::string_view file = fuzz::bytes_of(data + 1, size - 1);
  const int64_t n = data[0] & 2 ? 3 : -1;
  fuzz::expect_clean([&] {
    if (data[0] & 1)
      parse_safetensors_scores(file, "scores.safetensors", n);
    else
      parse_npy_scores(file, "scores.npy", n);
  });
  return 0;
}
