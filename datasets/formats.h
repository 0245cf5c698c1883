// The byte-level parsers behind the dataset readers and the blend-image trigger, for callers that
// hold the bytes already (and for the fuzz targets of tests/fuzz). Each checks sizes and fields
// before it allocates, and fails with one line starting with `name` (the file).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/dataset.h"

namespace sieve {

// Limits on what the readers accept; an error over one names it.
constexpr uint64_t kMaxDatasetFileBytes = uint64_t(2) << 30;  // one CIFAR binary or idx file (after gunzip)
constexpr uint64_t kMaxImageFileBytes = uint64_t(64) << 20;   // one PNG, JPEG or BMP file
constexpr int64_t kMaxImageSide = 8192;                       // pixels, either side of a decoded image

// CIFAR binary records appended to ds: each is `label_bytes` label bytes (label_index says which
// one is used, checked against [0, num_classes)) and 3072 pixel bytes (3x32x32, CHW).
// expected_records > 0: the file must hold exactly that many.
void append_cifar_records(std::string_view bytes, const std::string& name, int label_bytes, int label_index,
                          int64_t num_classes, int64_t expected_records, ImageDataset& ds);

// gzip data (one or more members) inflated, at most max_bytes of output; bytes that do not start
// with the gzip magic are returned as they are.
std::string gunzip_if_gzip(std::string_view bytes, const std::string& name, uint64_t max_bytes);

// FashionMNIST from the bytes of its idx3 image file and idx1 label file (uncompressed).
ImageDataset parse_fashion_mnist(std::string_view images, const std::string& images_name, std::string_view labels,
                                 const std::string& labels_name, bool resize32_rgb);

// A decoded PNG (8 or 16 bit, grey, palette, RGB, with alpha), JPEG or BMP image, converted to
// `channels` (1 = grey, 3 = RGB) and laid out CHW.
struct DecodedImage {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // channels * height * width
};
DecodedImage decode_image(std::string_view bytes, const std::string& name, int channels);
// The file at path, at most kMaxImageFileBytes.
DecodedImage load_image(const std::string& path, int channels);

// Sets ds.mean and ds.std to the per-channel mean and standard deviation of its pixels / 255.
void set_normalisation_from_images(ImageDataset& ds);

}  // namespace sieve
