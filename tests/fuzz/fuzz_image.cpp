// Image files (PNG of any bit depth and colour type, JPEG, BMP) as the image-folder reader and the
// blend-image trigger decode them: the first byte picks grey (1 channel) or RGB (3).
#include "datasets/formats.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const int channels = data[0] & 1 ? 3 : 1;
  fuzz::expect_clean([&] {
    const DecodedImage img = decode_image(fuzz::bytes_of(data + 1, size - 1), "input.png", channels);
    if (img.pixels.size() != static_cast<size_t>(img.channels * img.height * img.width)) __builtin_trap();
  });
  return 0;
}
