// CIFAR binary records: the first byte picks the layout (CIFAR-10: 1 label byte of 10 classes;
// CIFAR-100: coarse + fine label bytes, 20 or 100 classes), the rest is the file.
#include "datasets/formats.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sieve;
  if (size == 0) return 0;
  const std::string_view file = fuzz::bytes_of(data + 1, size - 1);
  fuzz::expect_clean([&] {
    ImageDataset ds;
    switch (data[0] % 3) {
      case 0: append_cifar_records(file, "data_batch_1.bin", 1, 0, 10, 0, ds); break;
      case 1: append_cifar_records(file, "train.bin", 2, 1, 100, 0, ds); break;
      default: append_cifar_records(file, "train.bin", 2, 0, 20, 0, ds); break;
    }
    if (ds.images.size() != ds.labels.size() * 3072) __builtin_trap();
  });
  return 0;
}
