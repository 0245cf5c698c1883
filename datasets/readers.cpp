// Readers for the official dataset formats and the procedural synthetic dataset.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <climits>
#include <memory>
#include <string_view>

#include "datasets/dataset.h"
#include "datasets/formats.h"
#include "engine/io.h"
#include "engine/error.h"
#include "engine/rng.h"


namespace sieve {

namespace fs = std::filesystem;

namespace {

const std::array<float, 3> kCifar10Mean{0.4914f, 0.4822f, 0.4465f}, kCifar10Std{0.2470f, 0.2435f, 0.2616f};
const std::array<float, 3> kCifar100Mean{0.5071f, 0.4865f, 0.4409f}, kCifar100Std{0.2673f, 0.2564f, 0.2762f};
const std::array<float, 3> kFashionMean{0.2860f, 0.2860f, 0.2860f}, kFashionStd{0.3530f, 0.3530f, 0.3530f};

std::string read_dataset_file(const fs::path& path) {
  SIEVE_CHECK(fs::exists(path), path.string(), ": cannot open (no such file)");
  return read_file(path.string(), kMaxDatasetFileBytes);
}

uint32_t read_be32(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const uint8_t*>(b.data() + at);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

fs::path idx_path(const fs::path& dir, const std::string& stem) {
  const fs::path raw = dir / stem;
  if (fs::exists(raw)) return raw;
  const fs::path gz = dir / (stem + ".gz");
  SIEVE_CHECK(fs::exists(gz), raw.string(), ": no such file (nor ", gz.filename().string(), ")");
  return gz;
}

void append_cifar_file(const fs::path& path, int label_bytes, int label_index, int64_t num_classes,
                       int64_t expected_records, ImageDataset& ds) {
  append_cifar_records(read_dataset_file(path), path.string(), label_bytes, label_index, num_classes,
                       expected_records, ds);
}

}  // namespace

void append_cifar_records(std::string_view bytes, const std::string& name, int label_bytes, int label_index,
                          int64_t num_classes, int64_t expected_records, ImageDataset& ds) {
  const size_t record = static_cast<size_t>(label_bytes) + 3072;
  SIEVE_CHECK(bytes.size() % record == 0 && !bytes.empty(), name, ": size ", bytes.size(),
              " is not a whole number of ", record, "-byte CIFAR records (truncated or not a CIFAR binary file)");
  const size_t n = bytes.size() / record;
  SIEVE_CHECK(expected_records <= 0 || static_cast<int64_t>(n) == expected_records, name, ": holds ", n,
              " records, expected ", expected_records);
  ds.labels.reserve(ds.labels.size() + n);
  ds.images.reserve(ds.images.size() + n * 3072);
  for (size_t i = 0; i < n; ++i) {
    const auto* r = reinterpret_cast<const uint8_t*>(bytes.data() + i * record);
    const int64_t label = r[label_index];
    SIEVE_CHECK(label < num_classes, name, ": record ", i, " has label ", label, ", outside [0, ", num_classes, ")");
    ds.labels.push_back(label);
    ds.images.insert(ds.images.end(), r + label_bytes, r + record);
  }
}

std::string gunzip_if_gzip(std::string_view bytes, const std::string& name, uint64_t max_bytes) {
  const auto is_gzip = [](std::string_view b) {
    return b.size() >= 2 && uint8_t(b[0]) == 0x1f && uint8_t(b[1]) == 0x8b;
  };
  if (!is_gzip(bytes)) return std::string(bytes);
  z_stream z{};
  SIEVE_CHECK(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK, name, ": cannot start zlib");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
  std::string out;
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(std::min<size_t>(bytes.size(), UINT_MAX));
  size_t fed = z.avail_in;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    SIEVE_CHECK(rc == Z_OK || rc == Z_STREAM_END || (rc == Z_BUF_ERROR && z.avail_in > 0), name,
                ": corrupt gzip data (", z.msg ? z.msg : (rc == Z_BUF_ERROR ? "unexpected end of file" : "inflate error"),
                ")");
    const size_t produced = sizeof buf - z.avail_out;
    SIEVE_CHECK(out.size() + produced <= max_bytes, name, ": more than ", max_bytes,
                " bytes once decompressed, over the limit for a dataset file");
    out.append(buf, produced);
    if (z.avail_in == 0 && fed < bytes.size()) {  // inputs over 4 GiB go in slices
      const size_t more = std::min<size_t>(bytes.size() - fed, UINT_MAX);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + fed));
      z.avail_in = static_cast<uInt>(more);
      fed += more;
    }
    if (rc != Z_STREAM_END) {
      SIEVE_CHECK(produced > 0 || z.avail_in > 0, name, ": corrupt gzip data (unexpected end of file)");
      continue;
    }
    const std::string_view rest = bytes.substr(fed - z.avail_in);
    if (rest.empty()) return out;
    // gzip files may hold several members one after the other (gzip -c a b > ab.gz).
    SIEVE_CHECK(is_gzip(rest), name, ": ", rest.size(), " bytes of trailing garbage after the gzip data");
    SIEVE_CHECK(inflateReset(&z) == Z_OK, name, ": cannot restart zlib");
  }
}

ImageDataset load_cifar10(const std::string& dir, bool train) {
  ImageDataset ds;
  ds.name = "cifar10";
  ds.channels = 3, ds.height = 32, ds.width = 32, ds.num_classes = 10;
  ds.mean = kCifar10Mean, ds.std = kCifar10Std;
  ds.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  const fs::path root(dir);
  if (train)
    for (int b = 1; b <= 5; ++b)
      append_cifar_file(root / ("data_batch_" + std::to_string(b) + ".bin"), 1, 0, 10, 10000, ds);
  else
    append_cifar_file(root / "test_batch.bin", 1, 0, 10, 10000, ds);
  return ds;
}

ImageDataset load_cifar100(const std::string& dir, bool train, bool fine_labels) {
  ImageDataset ds;
  ds.name = "cifar100";
  ds.channels = 3, ds.height = 32, ds.width = 32, ds.num_classes = fine_labels ? 100 : 20;
  ds.mean = kCifar100Mean, ds.std = kCifar100Std;
  for (int64_t c = 0; c < ds.num_classes; ++c) ds.class_names.push_back(std::to_string(c));
  append_cifar_file(fs::path(dir) / (train ? "train.bin" : "test.bin"), 2, fine_labels ? 1 : 0, ds.num_classes, 0,
                    ds);
  return ds;
}

ImageDataset load_fashion_mnist(const std::string& dir, bool train, bool resize32_rgb) {
  const std::string prefix = train ? "train" : "t10k";
  const fs::path ipath = idx_path(dir, prefix + "-images-idx3-ubyte");
  const fs::path lpath = idx_path(dir, prefix + "-labels-idx1-ubyte");
  const std::string ib = gunzip_if_gzip(read_dataset_file(ipath), ipath.string(), kMaxDatasetFileBytes);
  const std::string lb = gunzip_if_gzip(read_dataset_file(lpath), lpath.string(), kMaxDatasetFileBytes);
  return parse_fashion_mnist(ib, ipath.string(), lb, lpath.string(), resize32_rgb);
}

ImageDataset parse_fashion_mnist(std::string_view ib, const std::string& ipath, std::string_view lb,
                                 const std::string& lpath, bool resize32_rgb) {
  SIEVE_CHECK(ib.size() >= 16, ipath, ": truncated idx header (", ib.size(), " bytes)");
  SIEVE_CHECK(lb.size() >= 8, lpath, ": truncated idx header (", lb.size(), " bytes)");
  SIEVE_CHECK(read_be32(ib, 0) == 2051, ipath, ": wrong magic number ", read_be32(ib, 0),
              " (an idx3 image file has 2051)");
  SIEVE_CHECK(read_be32(lb, 0) == 2049, lpath, ": wrong magic number ", read_be32(lb, 0),
              " (an idx1 label file has 2049)");
  const int64_t n = read_be32(ib, 4), h = read_be32(ib, 8), w = read_be32(ib, 12);
  SIEVE_CHECK(h == 28 && w == 28, ipath, ": images are ", h, "x", w, ", FashionMNIST is 28x28");
  SIEVE_CHECK(static_cast<int64_t>(ib.size()) == 16 + n * h * w, ipath, ": size ", ib.size(), " does not match ", n,
              " images of ", h, "x", w, " (truncated?)");
  SIEVE_CHECK(static_cast<int64_t>(read_be32(lb, 4)) == n, lpath, ": ", read_be32(lb, 4), " labels for ", n,
              " images in ", fs::path(ipath).filename().string());
  SIEVE_CHECK(static_cast<int64_t>(lb.size()) == 8 + n, lpath, ": size ", lb.size(), " does not match ", n,
              " labels (truncated?)");

  ImageDataset ds;
  ds.name = "fashion_mnist";
  ds.num_classes = 10;
  ds.class_names = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"};
  ds.channels = resize32_rgb ? 3 : 1;
  ds.height = ds.width = resize32_rgb ? 32 : 28;
  ds.mean = kFashionMean, ds.std = kFashionStd;
  ds.images.resize(static_cast<size_t>(n * ds.image_bytes()));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<uint8_t>(lb[8 + i]);
    SIEVE_CHECK(label < 10, lpath, ": label ", label, " at index ", i, " is outside [0, 10)");
    ds.labels.push_back(label);
    const auto* src = reinterpret_cast<const uint8_t*>(ib.data() + 16 + i * h * w);
    uint8_t* dst = ds.image(i);
    if (!resize32_rgb) {
      std::copy(src, src + h * w, dst);
      continue;
    }
    resize_bilinear_u8(src, h, w, dst, 32, 32);
    std::copy(dst, dst + 1024, dst + 1024);
    std::copy(dst, dst + 1024, dst + 2048);
  }
  return ds;
}

void resize_bilinear_u8(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst, int64_t oh, int64_t ow) {
  for (int64_t y = 0; y < oh; ++y) {
    const double sy = std::max(0.0, (y + 0.5) * h / static_cast<double>(oh) - 0.5);
    const int64_t y0 = std::min<int64_t>(static_cast<int64_t>(sy), h - 1), y1 = std::min<int64_t>(y0 + 1, h - 1);
    const double fy = sy - y0;
    for (int64_t x = 0; x < ow; ++x) {
      const double sx = std::max(0.0, (x + 0.5) * w / static_cast<double>(ow) - 0.5);
      const int64_t x0 = std::min<int64_t>(static_cast<int64_t>(sx), w - 1), x1 = std::min<int64_t>(x0 + 1, w - 1);
      const double fx = sx - x0;
      const double v = (1 - fy) * ((1 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1]) +
                       fy * ((1 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1]);
      dst[y * ow + x] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
}

ImageDataset load_image_folder(const std::string& root, const std::string& split) {
  const fs::path dir = fs::path(root) / split;
  SIEVE_CHECK(fs::is_directory(dir), dir.string(), ": no such folder (expected <root>/<split>/<class>/*)");
  ImageDataset ds;
  ds.name = "image_folder";
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) ds.class_names.push_back(e.path().filename().string());
  std::sort(ds.class_names.begin(), ds.class_names.end());
  SIEVE_CHECK(!ds.class_names.empty(), dir.string(), ": no class folders");
  ds.num_classes = static_cast<int64_t>(ds.class_names.size());
  ds.channels = 3;
  for (int64_t c = 0; c < ds.num_classes; ++c) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir / ds.class_names[c]))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const DecodedImage img = load_image(f.string(), 3);
      if (ds.height == 0) ds.height = img.height, ds.width = img.width;
      SIEVE_CHECK(img.height == ds.height && img.width == ds.width, f.string(), ": image is ", img.width, "x",
                  img.height, " but earlier images are ", ds.width, "x", ds.height);
      ds.images.insert(ds.images.end(), img.pixels.begin(), img.pixels.end());
      ds.labels.push_back(c);
    }
  }
  SIEVE_CHECK(ds.size() > 0, dir.string(), ": no images found");
  set_normalisation_from_images(ds);
  return ds;
}

void set_normalisation_from_images(ImageDataset& ds) {
  const int64_t plane = ds.height * ds.width;
  for (int64_t k = 0; k < ds.channels; ++k) {
    double s = 0, sq = 0;
    for (int64_t i = 0; i < ds.size(); ++i)
      for (int64_t p = 0; p < plane; ++p) {
        const double v = ds.image(i)[k * plane + p] / 255.0;
        s += v, sq += v * v;
      }
    const double cnt = static_cast<double>(ds.size() * plane);
    ds.mean[k] = static_cast<float>(s / cnt);
    ds.std[k] = static_cast<float>(std::sqrt(std::max(1e-12, sq / cnt - (s / cnt) * (s / cnt))));
  }
}

ImageDataset make_synthetic(int64_t n, int64_t num_classes, uint64_t seed) {
  SIEVE_CHECK(n > 0 && num_classes >= 2 && num_classes <= 10, "synthetic: need n > 0 and 2..10 classes");
  ImageDataset ds;
  ds.name = "synthetic";
  ds.channels = 3, ds.height = 32, ds.width = 32, ds.num_classes = num_classes;
  ds.mean = {0.5f, 0.5f, 0.5f}, ds.std = {0.25f, 0.25f, 0.25f};
  for (int64_t c = 0; c < num_classes; ++c) ds.class_names.push_back("pattern" + std::to_string(c));
  ds.images.resize(static_cast<size_t>(n * ds.image_bytes()));
  Generator gen(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % num_classes;
    ds.labels.push_back(c);
    // Class c: a grating at angle pi*c/num_classes, frequency 2 + c%3, colour from c; random
    // phase, contrast and pixel noise per image, so the classes overlap a little.
    const double angle = 3.14159265358979 * static_cast<double>(c) / static_cast<double>(num_classes);
    const double freq = 2.0 + static_cast<double>(c % 3);
    const double phase = 6.283185307 * gen.uniform(), contrast = 0.5 + 0.5 * gen.uniform();
    const double col[3] = {0.3 + 0.7 * ((c * 37) % 10) / 10.0, 0.3 + 0.7 * ((c * 53 + 3) % 10) / 10.0,
                           0.3 + 0.7 * ((c * 71 + 7) % 10) / 10.0};
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x) {
        const double t = (std::cos(angle) * x + std::sin(angle) * y) / 32.0;
        const double g = 0.5 + 0.5 * contrast * std::sin(6.283185307 * freq * t + phase);
        for (int64_t k = 0; k < 3; ++k) {
          const double v = 255.0 * (g * col[k] + 0.15 * (gen.uniform() - 0.5));
          ds.image(i)[k * 1024 + y * 32 + x] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
        }
      }
  }
  return ds;
}

ImageDataset load_dataset(const std::string& name, const std::string& dir, bool train) {
  if (name == "cifar10") return load_cifar10(dir, train);
  if (name == "cifar100") return load_cifar100(dir, train, true);
  if (name == "fashion_mnist") return load_fashion_mnist(dir, train, true);
  if (name == "fashion_mnist_28") return load_fashion_mnist(dir, train, false);
  if (name == "image_folder") return load_image_folder(dir, train ? "train" : "test");
  if (name == "synthetic") return make_synthetic(train ? 2000 : 500, 10, train ? 1 : 2);
  if (name == "shapes") return make_shapes(train ? 3000 : 1000, train ? 1 : 2);
  fail("--dataset: unknown dataset '", name,
       "' (known: cifar10, cifar100, fashion_mnist, fashion_mnist_28, image_folder, synthetic, shapes)");
}

bool is_generated(const std::string& dataset) { return dataset == "synthetic" || dataset == "shapes";
}

}  // namespace sieve
