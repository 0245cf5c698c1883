// Image datasets held in memory as u8 (N, C, H, W) with i64 labels, read from the official
// formats (CIFAR-10/100 binary, FashionMNIST idx / idx.gz, image folders) or generated.
// Every reader checks sizes, magic numbers, label ranges and shapes, and fails with one line
// naming the file and what is wrong.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve {

struct ImageDataset {
  std::string name;  // "cifar10", "fashion_mnist", ...
  int64_t channels = 0, height = 0, width = 0;
  int64_t num_classes = 0;
  std::vector<uint8_t> images;  // size() * channels * height * width, each image CHW
  std::vector<int64_t> labels;
  std::vector<std::string> class_names;
  std::array<float, 3> mean{}, std{};  // per-channel normalisation of x/255

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_bytes() const { return channels * height * width; }
  const uint8_t* image(int64_t i) const { return images.data() + i * image_bytes(); }
  uint8_t* image(int64_t i) { return images.data() + i * image_bytes(); }
};

// <dir>/data_batch_1..5.bin (train) or <dir>/test_batch.bin: 10000 records of 1 label + 3072 bytes.
ImageDataset load_cifar10(const std::string& dir, bool train);
// <dir>/train.bin or test.bin: records of coarse label, fine label, 3072 bytes.
ImageDataset load_cifar100(const std::string& dir, bool train, bool fine_labels = true);
// <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte, raw or .gz. resize32_rgb: bilinear to
// 32x32 (half-pixel centres, as torchvision's Resize) and the grey channel repeated 3 times.
ImageDataset load_fashion_mnist(const std::string& dir, bool train, bool resize32_rgb);
// <root>/<split>/<class>/* (png, jpg, bmp), classes in sorted order, all images one size, RGB.
ImageDataset load_image_folder(const std::string& root, const std::string& split);
// Procedural 32x32 RGB classes (oriented colour gratings with noise) a small net learns in a
// minute on a CPU: the embedded default that needs no download.
ImageDataset make_synthetic(int64_t n, int64_t num_classes, uint64_t seed);
// Ten classes of geometric shapes (disc, square, triangle, ring, cross, bar, ellipse, hollow
// square, star, two dots) at random position, size, rotation and colour on cluttered 32x32 RGB
// backgrounds: a harder embedded dataset on which a small network stays below perfect accuracy.
ImageDataset make_shapes(int64_t n, uint64_t seed);

// Dataset names for --dataset: cifar10, cifar100, fashion_mnist (32x32x3, as study 2 uses it),
// fashion_mnist_28 (28x28x1), image_folder, synthetic (2000 / 500 images), shapes (3000 / 1000).
ImageDataset load_dataset(const std::string& name, const std::string& dir, bool train);
// Whether the dataset is generated (synthetic, shapes) rather than read from a folder.
bool is_generated(const std::string& dataset);

// The samples at `indices`, in that order.
ImageDataset subset_of(const ImageDataset& ds, const std::vector<int64_t>& indices);
// A seeded uniform random subset of `keep` samples in index order (the whole set when keep <= 0
// or keep >= size); `kept` receives the chosen original indices when given.
ImageDataset random_subset(const ImageDataset& ds, int64_t keep, uint64_t seed, std::vector<int64_t>* kept = nullptr);

// Bilinear resize of one u8 channel plane (half-pixel centres, clamped edges, rounded).
void resize_bilinear_u8(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst, int64_t oh, int64_t ow);

}  // namespace sieve
