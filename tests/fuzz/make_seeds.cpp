// Writes the seed corpus of every fuzz target: small valid files made with sieve's own writers
// (and, for the PNG variants stb cannot write, by hand), each prefixed with the selector bytes
// its target reads first.  Usage: fuzz_make_seeds OUT_DIR  ->  OUT_DIR/<target>/seed-*
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/parse.h"
#include "engine/safetensors.h"
#include "tests/common/images.h"
#include "tests/common/npy.h"
#include "training/trainer.h"

namespace fs = std::filesystem;
using namespace sieve;

namespace {

fs::path g_out;

void seed(const std::string& target, const std::string& name, const std::string& selector, const std::string& bytes) {
  fs::create_directories(g_out / target);
  std::ofstream(g_out / target / ("seed-" + name), std::ios::binary) << selector << bytes;
}

std::string gzip(const std::string& raw) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string be32(uint32_t v) { return test::detail::be32(v); }

// Rows of a test pattern for a PNG of `row_bytes` bytes per row.
std::string png(uint32_t w, uint32_t h, int depth, int colour, size_t row_bytes, const std::string& plte = "") {
  std::vector<std::string> rows;
  for (uint32_t y = 0; y < h; ++y) {
    std::string r;
    for (size_t i = 0; i < row_bytes; ++i) r += static_cast<char>((y * 37 + i * 11) & 0xff);
    rows.push_back(r);
  }
  return test::png_bytes(w, h, depth, colour, rows, plte);
}

void append_to(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

std::vector<uint8_t> pattern(int w, int h, int c) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h * c));
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7 + i / 13);
  return px;
}

void image_seeds() {
  for (int c : {1, 3}) {
    const std::vector<uint8_t> px = pattern(6, 5, c);
    std::string p, j, b;
    stbi_write_png_to_func(append_to, &p, 6, 5, c, px.data(), 6 * c);
    stbi_write_jpg_to_func(append_to, &j, 6, 5, c, px.data(), 90);
    stbi_write_bmp_to_func(append_to, &b, 6, 5, c, px.data());
    const std::string sel(1, char(c == 3 ? 1 : 0));
    seed("image", "png8-c" + std::to_string(c), sel, p);
    seed("image", "jpeg-c" + std::to_string(c), sel, j);
    seed("image", "bmp-c" + std::to_string(c), sel, b);
  }
  seed("image", "png16-rgb", "\x01", png(4, 3, 16, 2, 4 * 6));
  seed("image", "png16-grey-alpha", "\x00", png(4, 3, 16, 4, 4 * 4));
  seed("image", "png-palette", "\x01", png(5, 4, 8, 3, 5, std::string("\x00\x00\x00\xff\x00\x00\x00\xff\x00", 9)));
  seed("image", "png-palette-2bit", "\x01", png(8, 2, 2, 3, 2, std::string("\x00\x00\x00\xff\xff\xff", 6)));
  seed("image", "png-grey-1bit", "\x00", png(16, 2, 1, 0, 2));
}

void cifar_seeds() {
  std::string ten, hundred;
  for (int r = 0; r < 2; ++r) {
    ten += static_cast<char>(r * 7);
    hundred += static_cast<char>(r * 3), hundred += static_cast<char>(r * 41);
    for (int i = 0; i < 3072; ++i) {
      ten += static_cast<char>(i * r);
      hundred += static_cast<char>(i + r);
    }
  }
  seed("cifar", "cifar10", "\x00", ten);
  seed("cifar", "cifar100-fine", "\x01", hundred);
  seed("cifar", "cifar100-coarse", "\x02", hundred);
}

void idx_seeds() {
  const uint32_t n = 2;
  std::string images = be32(2051) + be32(n) + be32(28) + be32(28), labels = be32(2049) + be32(n);
  for (uint32_t i = 0; i < n * 784; ++i) images += static_cast<char>(i % 251);
  for (uint32_t i = 0; i < n; ++i) labels += static_cast<char>(i * 5);
  const auto sel = [](size_t split, bool resize) {
    return std::string{char(split >> 8), char(split & 0xff), char(resize)};
  };
  seed("idx", "raw", sel(images.size(), false), images + labels);
  seed("idx", "raw-resize", sel(images.size(), true), images + labels);
  const std::string gi = gzip(images), gl = gzip(labels);
  seed("idx", "gzip", sel(gi.size(), true), gi + gl);
  seed("idx", "gzip-two-members", sel(gi.size(), false), gi + gzip(labels.substr(0, 5)) + gzip(labels.substr(5)));
}

void safetensors_seeds() {
  const int64_t n = 6;
  std::vector<float> features(n * 4), logits(n * 3);
  for (size_t i = 0; i < features.size(); ++i) features[i] = 0.25f * static_cast<float>(i);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = -0.5f * static_cast<float>(i % 5);
  const std::vector<int64_t> labels{0, 1, 2, 0, 1, 2};
  const std::vector<uint8_t> poison{0, 1, 0, 0, 1, 0};
  seed("safetensors", "feature-dump", "",
       serialize_safetensors({{"features", Tensor::from_vector(features, {n, 4})},
                              {"logits", Tensor::from_vector(logits, {n, 3})},
                              {"labels", Tensor::from_vector(labels, {n})},
                              {"original_labels", Tensor::from_vector(labels, {n})},
                              {"is_poison", Tensor::from_vector(poison, {n})}},
                             {{"num_classes", "3"}, {"poison_fraction", "0.333333"}, {"assumed_fraction", "0.3"}},
                             "seed"));
  json history = json::array({epoch_json({1, 0.1, 2.3, 0.1, 2.2, 0.12, 1.5, 400}),
                              epoch_json({2, 0.05, 2.0, 0.3, NAN, NAN, 1.4, 410})});
  seed("safetensors", "checkpoint", "",
       serialize_safetensors({{"model.fc.weight", Tensor::from_vector(features, {6, 4})},
                              {"model.fc.bias", Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {6})},
                              {"optimizer.momentum_buffer", Tensor::from_vector(logits, {18})}},
                             {{"epochs_done", "2"}, {"optimizer_steps", "14"}, {"seed", "0"},
                              {"history", history.dump()}},
                             "seed"));
  seed("safetensors", "dtypes", "",
       serialize_safetensors({{"a", Tensor::from_vector(std::vector<int32_t>{1, -2, 3}, {3})},
                              {"b", Tensor::from_vector(std::vector<float>{1.5f}, {1, 1})},
                              {"c", Tensor::zeros({2, 0, 3})}},
                             {}, "seed"));
}

void spec_seeds() {
  const std::pair<const char*, const char*> specs[] = {
      {"\x01", "badnets"},          {"\x00", "red_square"},         {"\x01", "blend"},
      {"\x01", "patch:1,2,3,ff0000"}, {"\x00", "patch:0,0,4,checker"}, {"\x02", "all"},
      {"\x02", "spectre,scan,none"}, {"\x03", "full,random,el2n,forgetting,craig"},
      {"\x04", "-12"},              {"\x05", "0.25"},               {"\x05", "1e-3"}};
  int i = 0;
  for (const auto& [sel, text] : specs) seed("specs", std::to_string(i++), std::string(sel, 1), text);
}

void state_seeds() {
  const std::pair<char, json> files[] = {
      {0, {{"clean_acc", 0.91}, {"asr", 0.02}}},
      {1, {{"budget", 3}, {"removed_poisons", 2}, {"poisons", 4}, {"recall", 0.5}, {"precision", 0.66},
           {"auroc", nullptr}, {"removed", {5, 17, 99}}}},
      {2, {{"setting", "s"}, {"poison_fraction", 0.1}, {"seed", 3}, {"run", {{"host", "x"}}}}},
      {3, {{"trigger", "badnets"}, {"poisons", 10}, {"poison_fraction", 0.1}, {"train_size", 100}, {"target", 0},
           {"poisons_from_all_classes", false}, {"assumed_fraction", 0.05}}},
      {4, {{"method", "random"}, {"replicate_idx", 1}, {"seed", 1235}, {"study", {{"epochs", 2}, {"protocol", "seed"}}}}},
      {13, {{"method", "forget"}, {"subset_size", 3}, {"poison_kept", 1}, {"poison_total", 2},
            {"poison_retention", 0.5}, {"indices", {3, 1, 2}}, {"weights", {1.0, 1.0, 2.5}},
            {"cut", {{"zero_scores", 2}, {"cut_score", 0.0}, {"tied_at_cut", 2}, {"tied_kept", 1}}},
            {"draw", "python"}}},
      {6, {{"final", epoch_json({1, 0.1, 2.3, 0.1, 2.2, 0.12, 1.5, 400})},
           {"history", {epoch_json({1, 0.1, 2.3, 0.1, 2.2, 0.12, 1.5, 400})}}}},
      {7, {{"clean_acc", 0.5}, {"pruned_acc", nullptr}, {"pruned_test_loss", 1.25}}}};
  for (const auto& [sel, j] : files) seed("state_json", std::to_string(int(sel)), std::string(1, sel), j.dump(2));
}

void scores_seeds() {
  const double f8[3] = {0.5, -1.25, 3.0};
  const float f4[3] = {0.5f, -1.25f, 3.0f};
  const std::string d8(reinterpret_cast<const char*>(f8), sizeof f8), d4(reinterpret_cast<const char*>(f4), sizeof f4);
  seed("scores", "npy1-f8", "\x02", test::npy_bytes(1, "<f8", "(3,)", d8));
  seed("scores", "npy1-f4", "\x00", test::npy_bytes(1, "<f4", "(3,)", d4));
  seed("scores", "npy2-f8", "\x02", test::npy_bytes(2, "<f8", "(3,)", d8));
  seed("scores", "safetensors-f64", "\x03",
       serialize_safetensors({{"scores", Tensor::from_vector(std::vector<double>(f8, f8 + 3), {3})}}, {}, "seed"));
  seed("scores", "safetensors-f32-two", "\x01",
       serialize_safetensors({{"scores", Tensor::from_vector(std::vector<float>(f4, f4 + 3), {3})},
                              {"other", Tensor::zeros({2})}},
                             {{"defense", "x"}}, "seed"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  image_seeds();
  cifar_seeds();
  idx_seeds();
  safetensors_seeds();
  spec_seeds();
  state_seeds();
  scores_seeds();
  return 0;
}
