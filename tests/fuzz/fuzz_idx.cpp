// FashionMNIST idx files, raw or gzip: the first two bytes give where the image file ends and the
// label file begins, the third whether to resize to 32x32 RGB; each part goes through gunzip first.
#include <algorithm>

#include "datasets/formats.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size < 3) return 0;
  const std::string_view rest = fuzz::bytes_of(data + 3, size - 3);
  const size_t split = std::min<size_t>(rest.size(), size_t(data[0]) << 8 | data[1]);
  const bool resize = data[2] & 1;
  fuzz::expect_clean([&] {
    const std::string images = gunzip_if_gzip(rest.substr(0, split), "images-idx3-ubyte.gz", kMaxDatasetFileBytes);
    const std::string labels = gunzip_if_gzip(rest.substr(split), "labels-idx1-ubyte.gz", kMaxDatasetFileBytes);
    const ImageDataset ds = parse_fashion_mnist(images, "images-idx3-ubyte", labels, "labels-idx1-ubyte", resize);
    if (ds.images.size() != ds.labels.size() * static_cast<size_t>(ds.image_bytes())) __builtin_trap();
  });
  return 0;
}
