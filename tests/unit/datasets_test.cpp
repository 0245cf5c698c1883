// Dataset readers on small files the test writes itself: valid files load exactly, and
// truncated, wrong-magic, wrong-size and out-of-range-label files fail naming file and reason.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "datasets/augment.h"
#include "datasets/augment_kernel.h"
#include "datasets/dataset.h"
#include "engine/error.h"
#include "tests/common/check.h"
#include "tests/common/images.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

using test::TempDir;


void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}

// n CIFAR records with `label_bytes` labels, pixel byte p of record i = (i * 7 + p) % 251.
std::string cifar_records(int n, int label_bytes, int label) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    for (int l = 0; l < label_bytes; ++l) s += char(label == -1 ? (i % 10) : label);
    for (int p = 0; p < 3072; ++p) s += char((i * 7 + p) % 251);
  }
  return s;
}

std::string idx_images(uint32_t magic, int n, int h, int w) {
  std::string s = be32(magic) + be32(n) + be32(h) + be32(w);
  for (int i = 0; i < n * h * w; ++i) s += char((i * 13) % 256);
  return s;
}

std::string idx_labels(uint32_t magic, int n, int bad_at = -1) {
  std::string s = be32(magic) + be32(n);
  for (int i = 0; i < n; ++i) s += char(i == bad_at ? 10 : i % 10);
  return s;
}

}  // namespace

TEST_CASE("datasets: CIFAR-100 binary reads fine and coarse labels and CHW pixels") {
  TempDir d;
  std::string recs;
  for (int i = 0; i < 3; ++i) {
    recs += char(i + 1);   // coarse
    recs += char(50 + i);  // fine
    for (int p = 0; p < 3072; ++p) recs += char((i * 7 + p) % 251);
  }
  write(d.path / "train.bin", recs);
  const ImageDataset fine = load_cifar100(d.path.string(), true, true);
  CHECK(fine.size() == 3);
  CHECK(fine.labels == std::vector<int64_t>{50, 51, 52});
  CHECK(fine.image(2)[5] == (2 * 7 + 5) % 251);
  const ImageDataset coarse = load_cifar100(d.path.string(), true, false);
  CHECK(coarse.labels == std::vector<int64_t>{1, 2, 3});
  CHECK(coarse.num_classes == 20);
}

TEST_CASE("datasets: CIFAR readers reject truncated, missing and out-of-range files") {
  TempDir d;
  write(d.path / "test.bin", cifar_records(2, 2, 3).substr(0, 3074 + 100));
  CHECK_THROWS_WITH_AS(load_cifar100(d.path.string(), false), doctest::Contains("test.bin: size 3174 is not a whole number"), Error);
  write(d.path / "test.bin", cifar_records(2, 2, 100));
  CHECK_THROWS_WITH_AS(load_cifar100(d.path.string(), false), doctest::Contains("has label 100, outside [0, 100)"), Error);
  CHECK_THROWS_WITH_AS(load_cifar10(d.path.string(), false), doctest::Contains("test_batch.bin: cannot open (no such file)"), Error);
  write(d.path / "test_batch.bin", cifar_records(3, 1, -1));
  CHECK_THROWS_WITH_AS(load_cifar10(d.path.string(), false), doctest::Contains("holds 3 records, expected 10000"), Error);
  write(d.path / "test_batch.bin", cifar_records(10000, 1, 10));
  CHECK_THROWS_WITH_AS(load_cifar10(d.path.string(), false), doctest::Contains("has label 10, outside [0, 10)"), Error);
}

TEST_CASE("datasets: FashionMNIST idx, raw and gzip, 28x28 and resized 32x32x3") {
  TempDir d;
  write_gz(d.path / "t10k-images-idx3-ubyte.gz", idx_images(2051, 4, 28, 28));
  write(d.path / "t10k-labels-idx1-ubyte", idx_labels(2049, 4));
  const ImageDataset raw = load_fashion_mnist(d.path.string(), false, false);
  CHECK(raw.size() == 4);
  CHECK(raw.channels == 1);
  CHECK(raw.labels == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(raw.image(1)[3] == ((784 + 3) * 13) % 256);
  const ImageDataset rgb = load_fashion_mnist(d.path.string(), false, true);
  CHECK(rgb.channels == 3);
  CHECK(rgb.height == 32);
  CHECK(std::equal(rgb.image(0), rgb.image(0) + 1024, rgb.image(0) + 1024));  // grey repeated
}

TEST_CASE("datasets: FashionMNIST rejects wrong magic, truncation, count mismatch, bad labels") {
  TempDir d;
  const std::string dir = d.path.string();
  write(d.path / "train-labels-idx1-ubyte", idx_labels(2049, 4));
  write(d.path / "train-images-idx3-ubyte", idx_images(2049, 4, 28, 28));
  CHECK_THROWS_WITH_AS(load_fashion_mnist(dir, true, false), doctest::Contains("wrong magic number 2049"), Error);
  write(d.path / "train-images-idx3-ubyte", idx_images(2051, 4, 28, 28).substr(0, 16 + 784 * 3));
  CHECK_THROWS_WITH_AS(load_fashion_mnist(dir, true, false), doctest::Contains("does not match 4 images of 28x28"), Error);
  write(d.path / "train-images-idx3-ubyte", idx_images(2051, 5, 28, 28));
  CHECK_THROWS_WITH_AS(load_fashion_mnist(dir, true, false), doctest::Contains("4 labels for 5 images"), Error);
  write(d.path / "train-images-idx3-ubyte", idx_images(2051, 4, 28, 28));
  write(d.path / "train-labels-idx1-ubyte", idx_labels(2049, 4, 2));
  CHECK_THROWS_WITH_AS(load_fashion_mnist(dir, true, false), doctest::Contains("label 10 at index 2"), Error);
  write(d.path / "train-labels-idx1-ubyte", "\x1f\x8b garbage that is not gzip");
  CHECK_THROWS_AS(load_fashion_mnist(dir, true, false), Error);
}

TEST_CASE("datasets: bilinear resize keeps constants and interpolates") {
  std::vector<uint8_t> flat(28 * 28, 77), out(32 * 32);
  resize_bilinear_u8(flat.data(), 28, 28, out.data(), 32, 32);
  for (uint8_t v : out) CHECK(v == 77);
  const std::vector<uint8_t> two{0, 100};  // 1x2 -> 1x4: half-pixel centres give 0, 25, 75, 100
  std::vector<uint8_t> four(4);
  resize_bilinear_u8(two.data(), 1, 2, four.data(), 1, 4);
  CHECK(four == std::vector<uint8_t>{0, 25, 75, 100});
}

TEST_CASE("datasets: synthetic is deterministic and balanced") {
  const ImageDataset a = make_synthetic(100, 10, 3), b = make_synthetic(100, 10, 3);
  CHECK(a.images == b.images);
  CHECK(a.labels == b.labels);
  for (int64_t c = 0; c < 10; ++c) CHECK(std::count(a.labels.begin(), a.labels.end(), c) == 10);
  CHECK(make_synthetic(100, 10, 4).images != a.images);
}

TEST_CASE("datasets: shapes is deterministic and balanced, and varies within a class") {
  const ImageDataset a = make_shapes(200, 3), b = make_shapes(200, 3);
  CHECK(a.images == b.images);
  CHECK(a.labels == b.labels);
  CHECK(a.class_names.size() == 10);
  for (int64_t c = 0; c < 10; ++c) CHECK(std::count(a.labels.begin(), a.labels.end(), c) == 20);
  CHECK(make_shapes(200, 4).images != a.images);
  // Colour belongs to no class: each class's mean image colour varies from image to image about
  // as much as the whole set's does.
  auto mean_rgb = [&](int64_t i) {
    std::array<double, 3> m{};
    for (int k = 0; k < 3; ++k)
      for (int p = 0; p < 1024; ++p) m[k] += a.image(i)[k * 1024 + p] / 1024.0;
    return m;
  };
  for (int64_t c = 0; c < 10; ++c) {
    double lo = 255, hi = 0;
    for (int64_t i = c; i < a.size(); i += 10) lo = std::min(lo, mean_rgb(i)[0]), hi = std::max(hi, mean_rgb(i)[0]);
    CHECK_MESSAGE(hi - lo > 60, "class " << c << ": mean red " << lo << ".." << hi);
  }
  for (int k = 0; k < 3; ++k) {
    CHECK(a.mean[k] > 0.2f);
    CHECK(a.mean[k] < 0.8f);
    CHECK(a.std[k] > 0.1f);
  }
  CHECK(load_dataset("shapes", "", true).size() == 3000);
  CHECK(load_dataset("shapes", "", false).size() == 1000);
  CHECK(is_generated("shapes"));
  CHECK(!is_generated("cifar10"));
}

TEST_CASE("augment: crop, flip and normalise match a direct implementation") {
  const ImageDataset ds = make_synthetic(6, 3, 9);
  Tensor images = Tensor::from_vector(ds.images, {6, 3, 32, 32});
  Tensor idx = Tensor::from_vector(std::vector<int64_t>{4, 0, 4, 5}, {4});
  AugmentParams p;
  p.crop_flip = true, p.padding = 4, p.seed = 17, p.counter = 100;
  p.mean = {0.1f, 0.2f, 0.3f}, p.std = {0.5f, 0.25f, 0.125f};
  const std::vector<float> out = assemble_batch(images, idx, p).to_vector<float>();
  int shifted = 0;
  for (int64_t b = 0; b < 4; ++b) {
    const CropFlipBits cf = crop_flip_bits(17, 100 + b, 4);
    CHECK(cf.dy >= 0);
    CHECK(cf.dy <= 8);
    shifted += cf.dy != 4 || cf.dx != 4;
    const int64_t src = std::vector<int64_t>{4, 0, 4, 5}[b];
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) {
          // torchvision order: pad by 4, crop at (dy, dx), then mirror.
          const int64_t cx = cf.flip ? 31 - x : x;
          const int64_t py = y + cf.dy - 4, px = cx + cf.dx - 4;
          const bool inside = py >= 0 && py < 32 && px >= 0 && px < 32;
          const float v = inside ? ds.image(src)[k * 1024 + py * 32 + px] / 255.0f : 0.0f;
          const float expect = (v - p.mean[k]) / p.std[k];
          REQUIRE(std::abs(out[((b * 3 + k) * 32 + y) * 32 + x] - expect) < 1e-5f);
        }
  }
  CHECK(shifted > 0);
  p.crop_flip = false;
  const std::vector<float> plain = assemble_batch(images, idx, p).to_vector<float>();
  CHECK(plain[0] == doctest::Approx((ds.image(4)[0] / 255.0f - 0.1f) / 0.5f));
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{6}, {1});
  CHECK_THROWS_WITH_AS(assemble_batch(images, bad, p), doctest::Contains("index 6 outside a dataset of 6"), Error);
}

TEST_CASE("datasets: image folders read classes in order and reject undecodable files") {
  TempDir d;
  const ImageDataset src = make_synthetic(4, 2, 5);
  for (const char* cls : {"cat", "ant"}) fs::create_directories(d.path / "train" / cls);
  auto bmp = [](const uint8_t* chw) { return test::bmp_bytes(chw, 3, 32, 32); };
  write(d.path / "train" / "cat" / "a.bmp", bmp(src.image(0)));
  write(d.path / "train" / "ant" / "b.bmp", bmp(src.image(1)));
  write(d.path / "train" / "ant" / "c.bmp", bmp(src.image(2)));
  const ImageDataset ds = load_image_folder(d.path.string(), "train");
  CHECK(ds.class_names == std::vector<std::string>{"ant", "cat"});
  CHECK(ds.labels == std::vector<int64_t>{0, 0, 1});
  CHECK(std::equal(ds.image(2), ds.image(2) + 3072, src.image(0)));
  CHECK(std::equal(ds.image(0), ds.image(0) + 3072, src.image(1)));
  write(d.path / "train" / "cat" / "broken.png", "\x89PNG\r\n\x1a\n not really");
  CHECK_THROWS_WITH_AS(load_image_folder(d.path.string(), "train"), doctest::Contains("broken.png: cannot decode image"), Error);
  CHECK_THROWS_WITH_AS(load_image_folder(d.path.string(), "test"), doctest::Contains("no such folder"), Error);
}
