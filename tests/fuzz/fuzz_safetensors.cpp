// safetensors bytes -> the validating parser, then the two kinds of file sieve reads from it: a
// feature dump (defend --offline reads other people's) and a training checkpoint (resume).
#include "defense/feature_dump.h"
#include "engine/safetensors.h"
#include "tests/fuzz/fuzz.h"
#include "training/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  fuzz::expect_clean([&] {
    const SafetensorsFile file = parse_safetensors(std::string(fuzz::bytes_of(data, size)), "input.safetensors");
    fuzz::expect_clean([&] { read_feature_dump(file, "input.safetensors"); });
    fuzz::expect_clean([&] { read_checkpoint(file, "input.safetensors"); });
  });
  return 0;
}
