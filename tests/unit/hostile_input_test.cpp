// Limits and field checks on what sieve reads from outside: every refusal is one line naming the
// file (or field) and the reason, and happens before anything large is allocated.
#include <doctest/doctest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "studies/state_files.h"
#include "datasets/formats.h"
#include "defense/external_scores.h"
#include "defense/feature_dump.h"
#include "engine/error.h"
#include "engine/io.h"
#include "engine/parse.h"
#include "engine/safetensors.h"
#include "tests/common/check.h"
#include "tests/common/images.h"
#include "tests/common/npy.h"
#include "training/trainer.h"

using namespace sieve;
using doctest::Contains;

namespace {

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// The signature and IHDR chunk of a PNG: all a decoder reads to learn the size.
std::string png_header(uint32_t w, uint32_t h) {
  std::string ihdr = be32(w) + be32(h);
  ihdr += {8, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n") + test::detail::png_chunk("IHDR", ihdr);
}

std::string gzip(const std::string& raw) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

TEST_CASE("limits: image sides and image file sizes are checked before decoding") {
  CHECK_THROWS_WITH_AS(decode_image(png_header(9000, 10), "big.png", 3),
                       Contains("big.png: image is 9000x10, over the limit of 8192 pixels a side"), Error);
  CHECK_THROWS_WITH_AS(decode_image(png_header(10, 70000), "tall.png", 1),
                       Contains("tall.png: image is 10x70000, over the limit of 8192 pixels a side"), Error);
  const std::string huge(kMaxImageFileBytes + 1, '\0');
  CHECK_THROWS_WITH_AS(decode_image(huge, "huge.bmp", 3),
                       Contains("huge.bmp: 67108865 bytes, over the limit of 67108864 bytes for an image file"), Error);
  CHECK_THROWS_WITH_AS(decode_image("BM not an image", "x.bmp", 3), Contains("x.bmp: cannot decode image ("), Error);
}

TEST_CASE("limits: gzip output is bounded, and truncated or trailing data is refused") {
  const std::string raw(3 << 20, 'a');
  const std::string gz = gzip(raw);
  CHECK(gz.size() < 10000);  // a small file that inflates 300-fold
  CHECK(gunzip_if_gzip(gz, "a.gz", 3 << 20) == raw);
  CHECK_THROWS_WITH_AS(gunzip_if_gzip(gz, "a.gz", 1 << 20),
                       Contains("a.gz: more than 1048576 bytes once decompressed, over the limit"), Error);
  CHECK_THROWS_WITH_AS(gunzip_if_gzip(gz.substr(0, gz.size() / 2), "a.gz", 3 << 20), Contains("a.gz: corrupt gzip data"),
                       Error);
  CHECK_THROWS_WITH_AS(gunzip_if_gzip(gz + "xyz", "a.gz", 3 << 20),
                       Contains("a.gz: 3 bytes of trailing garbage after the gzip data"), Error);
  CHECK(gunzip_if_gzip(gzip("ab") + gzip("cd"), "two.gz", 100) == "abcd");  // members one after the other
  CHECK(gunzip_if_gzip("plain bytes", "raw", 100) == "plain bytes");
}

TEST_CASE("limits: read_file refuses a file over its limit before reading it, and a stream that grows past it") {
  test::TempDir dir;
  const std::string path = dir / "f.bin";
  std::ofstream(path, std::ios::binary) << std::string(100, 'x');
  CHECK(read_file(path, 100).size() == 100);
  CHECK_THROWS_WITH_AS(read_file(path, 99), Contains((path + ": 100 bytes, over the limit of 99 bytes").c_str()), Error);
  // /dev/zero has no size ahead: the limit stops the read.
  CHECK_THROWS_WITH_AS(read_file("/dev/zero", 1 << 20), Contains("/dev/zero: 1114112 bytes or more, over the limit"),
                       Error);
}

TEST_CASE("parse: integers and numbers from text are whole, in range, and named when wrong") {
  CHECK(parse_int("42", "x") == 42);
  CHECK(parse_int("-7", "x", -10, 10) == -7);
  CHECK(parse_int("+7", "x") == 7);
  CHECK_THROWS_WITH_AS(parse_int("12abc", "meta num_classes"), Contains("meta num_classes: \"12abc\" is not an integer"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_int("", "n"), Contains("n: \"\" is not an integer"), Error);
  CHECK_THROWS_WITH_AS(parse_int("99999999999999999999", "n"), Contains("is outside"), Error);
  CHECK_THROWS_WITH_AS(parse_int("11", "n", 0, 10), Contains("n: \"11\" is outside [0, 10]"), Error);
  CHECK(parse_double("0.25", "x") == 0.25);
  CHECK(std::isnan(parse_double("nan", "x")));
  CHECK_THROWS_WITH_AS(parse_double("0.25x", "col"), Contains("col: \"0.25x\" is not a number"), Error);
  CHECK_THROWS_WITH_AS(parse_double(" 1", "col"), Contains("is not a number"), Error);
}

TEST_CASE("json state files: bad JSON and wrong fields are one line naming the file and the field") {
  test::TempDir dir;
  const std::string path = dir / "result.json";
  std::ofstream(path) << "{\"clean_acc\": 0.5, \"asr\": ";
  CHECK_THROWS_WITH_AS(load_json(path), Contains((path + ": not valid JSON: ").c_str()), Error);
  CHECK_THROWS_WITH_AS(read_accuracy_asr(json{{"clean_acc", "high"}, {"asr", 0.1}}, "r.json"),
                       Contains("r.json: field \"clean_acc\" must be a number, found string \"high\""), Error);
  CHECK_THROWS_WITH_AS(read_accuracy_asr(json::array(), "r.json"), Contains("r.json: expected a JSON object, found array"),
                       Error);
  CHECK(std::isnan(read_accuracy_asr(json{{"clean_acc", nullptr}, {"asr", 0.1}}, "r.json").clean_acc));

  const json det = {{"budget", 2},    {"removed_poisons", 1}, {"poisons", 3},         {"recall", 0.33},
                    {"precision", 0.5}, {"auroc", 0.9},        {"removed", {4, 1}}};
  CHECK(read_detection(det, "d.json", 10).removed == std::vector<int64_t>{4, 1});
  json bad = det;
  bad["removed"] = {4, 10};  // index 10 of a 10-sample set: once an out-of-bounds write
  CHECK_THROWS_WITH_AS(read_detection(bad, "d.json", 10),
                       Contains("d.json: field \"removed\" holds 10 at position 1, not an integer in [0, 9]"), Error);
  bad["removed"] = {4, 4};
  CHECK_THROWS_WITH_AS(read_detection(bad, "d.json", 10), Contains("d.json: field \"removed\" holds index 4 twice"),
                       Error);
  bad["removed"] = {4};
  CHECK_THROWS_WITH_AS(read_detection(bad, "d.json", 10), Contains("lists 1 samples but the budget is 2"), Error);

  const json sel = {{"indices", {0, 5}}, {"weights", {1.0, 2.0}}, {"subset_size", 2},
                    {"poison_kept", 1},  {"poison_total", 1},     {"poison_retention", 1.0}};
  CHECK(read_selection(sel, "s.json", 6).weights == std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_WITH_AS(read_selection(sel, "s.json", 5), Contains("holds 5 at position 1, not an integer in [0, 4]"), Error);
  json short_weights = sel;
  short_weights["weights"] = {1.0};
  CHECK_THROWS_WITH_AS(read_selection(short_weights, "s.json", 6), Contains("s.json: 1 weights for 2 indices"), Error);

  CHECK_THROWS_WITH_AS(read_cell(json{{"method", "random"}, {"replicate_idx", 0}, {"seed", -1}, {"study", json::object()}},
                                 "cell.json"),
                       Contains("cell.json: field \"seed\" must be a non-negative integer, found -1"), Error);
  CHECK_THROWS_WITH_AS(check_setting(json{{"seed", 1}}, json{{"seed", 2}}, "setting.json"),
                       Contains("setting.json: this folder holds a run with seed = 1, not 2"), Error);
}

TEST_CASE("checkpoint history: a NaN test loss (no test set) is written as null and reads back as NaN") {
  EpochStats e{3, 0.1, 1.5, 0.5, NAN, NAN, 2.0, 100};
  const std::vector<EpochStats> back = history_from_json(json::array({epoch_json(e)}), "ckpt");
  REQUIRE(back.size() == 1);
  CHECK(back[0].epoch == 3);
  CHECK(std::isnan(back[0].test_loss));
  CHECK_THROWS_WITH_AS(history_from_json(json::array({{{"epoch", 1}}}), "ckpt"),
                       Contains("ckpt (history entry 0): no field \"lr\""), Error);

  SafetensorsFile f;
  f.tensors["optimizer.momentum_buffer"] = Tensor::zeros({3});
  f.metadata = {{"seed", "0"}, {"epochs_done", "1x"}, {"optimizer_steps", "4"}, {"history", "[]"}};
  CHECK_THROWS_WITH_AS(read_checkpoint(f, "c.safetensors"),
                       Contains("c.safetensors: metadata epochs_done: \"1x\" is not an integer"), Error);
  f.metadata["epochs_done"] = "1";
  CHECK_THROWS_WITH_AS(read_checkpoint(f, "c.safetensors"),
                       Contains("c.safetensors: the history holds 0 epochs but epochs_done is 1"), Error);
}

TEST_CASE("feature dumps: labels, flags, classes and fractions are checked") {
  const int64_t n = 4;
  SafetensorsFile f;
  f.tensors["features"] = Tensor::zeros({n, 2});
  f.tensors["logits"] = Tensor::zeros({n, 3});
  f.tensors["labels"] = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 1}, {n});
  f.tensors["is_poison"] = Tensor::from_vector(std::vector<uint8_t>{0, 1, 0, 0}, {n});
  f.metadata = {{"num_classes", "3"}, {"poison_fraction", "0.25"}};
  const FeatureDump d = read_feature_dump(f, "dump");
  CHECK(d.labels == std::vector<int64_t>{0, 1, 2, 1});
  CHECK(d.poison_fraction == 0.25);

  SafetensorsFile bad = f;
  bad.tensors["labels"] = Tensor::from_vector(std::vector<int64_t>{0, 1, 3, 1}, {n});
  CHECK_THROWS_WITH_AS(read_feature_dump(bad, "dump"), Contains("dump: label 3 of sample 2 is outside [0, 3)"), Error);
  bad = f;
  bad.tensors["is_poison"] = Tensor::from_vector(std::vector<uint8_t>{0, 2, 0, 0}, {n});
  CHECK_THROWS_WITH_AS(read_feature_dump(bad, "dump"), Contains("dump: is_poison of sample 1 is 2, not 0 or 1"), Error);
  bad = f;
  bad.metadata["num_classes"] = "three";
  CHECK_THROWS_WITH_AS(read_feature_dump(bad, "dump"), Contains("dump: metadata num_classes: \"three\" is not an integer"),
                       Error);
  bad = f;
  bad.metadata["poison_fraction"] = "1.5";
  CHECK_THROWS_WITH_AS(read_feature_dump(bad, "dump"), Contains("poison_fraction = 1.5 is outside (0, 1)"), Error);
  bad = f;
  bad.tensors["logits"] = Tensor::zeros({n, 4});
  CHECK_THROWS_WITH_AS(read_feature_dump(bad, "dump"), Contains("disagree"), Error);
}

TEST_CASE("images: PNG of every bit depth and colour type, JPEG and BMP decode to the expected pixels") {
  using test::png_bytes;
  const auto rgb = [](const DecodedImage& img) {  // CHW -> the pixels as (r, g, b) in row order
    std::vector<std::array<int, 3>> out;
    const int64_t plane = img.height * img.width;
    for (int64_t p = 0; p < plane; ++p)
      out.push_back({img.pixels[p], img.pixels[plane + p], img.pixels[2 * plane + p]});
    return out;
  };
  using Px = std::vector<std::array<int, 3>>;
  // 16-bit RGB: the high byte of each sample.
  const std::string rgb16 = png_bytes(2, 1, 16, 2, {std::string("\x12\x34\x56\x78\x9a\xbc\xff\xff\x00\x01\x80\x00", 12)});
  CHECK(rgb(decode_image(rgb16, "a.png", 3)) == Px{{0x12, 0x56, 0x9a}, {0xff, 0x00, 0x80}});
  // 8-bit palette.
  const std::string pal = png_bytes(3, 1, 8, 3, {std::string("\x02\x01\x00", 3)},
                                    std::string("\x00\x00\x00\xff\x00\x00\x00\xff\x00", 9));
  CHECK(rgb(decode_image(pal, "p.png", 3)) == Px{{0, 255, 0}, {255, 0, 0}, {0, 0, 0}});
  // 1-bit grey, expanded to 0 / 255 and repeated to RGB; as one channel, the grey itself.
  const std::string bits = png_bytes(8, 1, 1, 0, {std::string("\xb0", 1)});
  CHECK(decode_image(bits, "g.png", 1).pixels == std::vector<uint8_t>{255, 0, 255, 255, 0, 0, 0, 0});
  CHECK(rgb(decode_image(bits, "g.png", 3))[2] == std::array<int, 3>{255, 255, 255});
  // Grey + alpha and RGBA: the alpha is dropped, not composited.
  CHECK(rgb(decode_image(png_bytes(2, 1, 8, 4, {std::string("\x64\x32\xc8\xff", 4)}), "ga.png", 3)) ==
        Px{{100, 100, 100}, {200, 200, 200}});
  CHECK(rgb(decode_image(png_bytes(1, 1, 8, 6, {std::string("\x0a\x14\x1e\x00", 4)}), "rgba.png", 3)) ==
        Px{{10, 20, 30}});
  // RGB to one channel: stb_image's luma, (77 r + 150 g + 29 b) >> 8.
  CHECK(decode_image(png_bytes(1, 1, 8, 2, {std::string("\xc8\x64\x32", 3)}), "c.png", 1).pixels ==
        std::vector<uint8_t>{static_cast<uint8_t>((200 * 77 + 100 * 150 + 50 * 29) >> 8)});
  // A truncated PNG names the decoder's reason.
  CHECK_THROWS_WITH_AS(decode_image(rgb16.substr(0, rgb16.size() - 20), "t.png", 3),
                       Contains("t.png: cannot decode image (PNG: "), Error);

  // BMP: exact; JPEG: lossy, close to the original.
  std::vector<uint8_t> chw(3 * 16 * 16);
  for (size_t i = 0; i < chw.size(); ++i) chw[i] = static_cast<uint8_t>(64 + (i % 256) / 4);
  CHECK(decode_image(test::bmp_bytes(chw.data(), 3, 16, 16), "b.bmp", 3).pixels == chw);
  std::vector<uint8_t> hwc(chw.size());
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t p = 0; p < 256; ++p) hwc[p * 3 + k] = chw[k * 256 + p];
  std::string jpeg;
  stbi_write_jpg_to_func([](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size); },
                         &jpeg, 16, 16, 3, hwc.data(), 100);
  const DecodedImage j = decode_image(jpeg, "j.jpg", 3);
  REQUIRE(j.pixels.size() == chw.size());
  int worst = 0;
  for (size_t i = 0; i < chw.size(); ++i) worst = std::max(worst, std::abs(int(j.pixels[i]) - int(chw[i])));
  CHECK(worst <= 8);
  CHECK_THROWS_WITH_AS(decode_image(jpeg.substr(0, 40), "j.jpg", 3), Contains("j.jpg: cannot decode image (JPEG: "),
                       Error);
  CHECK_THROWS_WITH_AS(decode_image(jpeg.substr(0, jpeg.size() - 30), "j.jpg", 3), Contains("truncated file)"), Error);
  // A BMP header claiming more pixels than the file could hold, even run-length encoded.
  std::string forged = test::bmp_bytes(chw.data(), 3, 16, 16).substr(0, 54);
  forged[18] = char(0xe8), forged[19] = char(0x03), forged[22] = char(0xe8), forged[23] = char(0x03);  // 1000x1000
  CHECK_THROWS_WITH_AS(decode_image(forged, "f.bmp", 3),
                       Contains("f.bmp: header claims 1000x1000 pixels, more than its 54 bytes can hold"), Error);
}

TEST_CASE("external scores: .npy of float32 or float64 (any format version) and safetensors vectors") {
  const auto npy = [](int major, const char* descr, const char* shape, const std::string& data,
                      const char* order = "False") { return test::npy_bytes(major, descr, shape, data, order); };
  const double f8[3] = {0.5, -1.25, 3.0};
  const float f4[3] = {0.5f, -1.25f, 3.0f};
  const std::string d8(reinterpret_cast<const char*>(f8), sizeof f8), d4(reinterpret_cast<const char*>(f4), sizeof f4);
  const std::vector<double> want{0.5, -1.25, 3.0};
  CHECK(parse_npy_scores(npy(1, "<f8", "(3,)", d8), "s.npy", 3) == want);
  CHECK(parse_npy_scores(npy(2, "<f4", "(3,)", d4), "s.npy", 3) == want);
  CHECK(parse_npy_scores(npy(3, "<f8", "(3,)", d8, "True"), "s.npy", -1) == want);
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, "<f8", "(3,)", d8), "s.npy", 4),
                       Contains("s.npy: 3 scores, but the training set has 4 samples"), Error);
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, "<i8", "(3,)", d8), "s.npy", 3),
                       Contains("s.npy: dtype '<i8' is not a little-endian float32 or float64"), Error);
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, ">f8", "(3,)", d8), "s.npy", 3), Contains("dtype '>f8'"), Error);
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, "<f8", "(3, 1)", d8), "s.npy", 3),
                       Contains("s.npy: shape (3, 1) is not one-dimensional"), Error);
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, "<f8", "(3,)", d8.substr(0, 20)), "s.npy", 3),
                       Contains("s.npy: 20 data bytes for 3 float64 scores"), Error);
  CHECK_THROWS_WITH_AS(parse_npy_scores("PK\x03\x04 a zip", "s.npy", 3), Contains("s.npy: not a .npy file"), Error);
  const double with_nan[3] = {0.5, NAN, 1};
  CHECK_THROWS_WITH_AS(parse_npy_scores(npy(1, "<f8", "(3,)", std::string(reinterpret_cast<const char*>(with_nan), 24)),
                                        "s.npy", 3),
                       Contains("s.npy: score 1 is nan (scores must be finite)"), Error);

  const std::string st = serialize_safetensors({{"scores", Tensor::from_vector(std::vector<float>(f4, f4 + 3), {3})},
                                                {"other", Tensor::zeros({2})}},
                                               {}, "x");
  CHECK(parse_safetensors_scores(st, "s.safetensors", 3) == want);
  const std::string ints = serialize_safetensors({{"s", Tensor::from_vector(std::vector<int64_t>{1, 2, 3}, {3})}}, {}, "x");
  CHECK_THROWS_WITH_AS(parse_safetensors_scores(ints, "s.safetensors", 3),
                       Contains("s.safetensors: tensor 's' is i64, not F32 or F64"), Error);
}
