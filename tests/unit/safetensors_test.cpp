// safetensors round trips, the byte layout pinned against a hand-assembled file, the validating
// parser against malformed files, and write_file_atomic's replace / fail-cleanly behaviour.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/io.h"
#include "engine/safetensors.h"
#include "tests/common/check.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

using test::TempDir;


std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file image with the given header text and data section.
std::string image(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// One tensor "a" with the given entry fields, over `data_bytes` bytes of data.
std::string one_entry(const std::string& entry, size_t data_bytes) {
  return image(cat(R"({"a":)", entry, "}"), std::string(data_bytes, '\x5a'));
}

Tensor from_bytes(const Shape& shape, DType dtype, const void* bytes) {
  Tensor t = Tensor::empty(shape, dtype);
  std::memcpy(t.raw(), bytes, t.nbytes());
  return t;
}

// Distinct, non-zero bytes so any misplaced or dropped byte shows.
Tensor patterned(const Shape& shape, DType dtype, uint8_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(seed + 37 * i + 1);
  return t;
}

void check_same_tensor(const Tensor& got, const Tensor& want, const std::string& name) {
  INFO("tensor ", name);
  CHECK(got.device() == Device::cpu);
  CHECK(got.dtype() == want.dtype());
  CHECK(got.shape() == want.shape());
  REQUIRE(got.nbytes() == want.nbytes());
  CHECK(std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0);
}

doctest::Contains contains(const std::string& s) { return doctest::Contains(s.c_str()); }

// The parser must reject `bytes` with one line "bad.safetensors: ..." containing `reason`.
void expect_rejected(const std::string& bytes, const std::string& reason) {
  INFO("expected a rejection containing: ", reason);
  try {
    parse_safetensors(bytes, "bad.safetensors");
    FAIL("the parser accepted the file");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK_MESSAGE(msg.rfind("bad.safetensors: ", 0) == 0, msg);
    const bool one_line = std::all_of(msg.begin(), msg.end(),
                                      [](char c) { return static_cast<unsigned char>(c) >= 0x20; });
    CHECK_MESSAGE(one_line, msg);
    CHECK_MESSAGE(msg.find(reason) != std::string::npos, msg);
  }
}

}  // namespace

TEST_CASE("safetensors: every dtype, empty and scalar tensors and metadata round-trip exactly") {
  // bf16 / f16 bit patterns that a value round trip could lose: -0, NaN payloads, infinities,
  // subnormals, the largest finite values.
  const uint16_t bf16_bits[] = {0x8000, 0x7fc1, 0xff80, 0x0001, 0x7f7f, f32_to_bf16(3.14159f)};
  const uint16_t f16_bits[] = {0x8000, 0x7e01, 0x7c00, 0x0001, 0x7bff, f32_to_f16(-2.71828f)};
  const float f32_values[] = {-0.0f, std::numeric_limits<float>::quiet_NaN(), INFINITY,
                              std::numeric_limits<float>::denorm_min(), 1.5f, -3.25e7f};
  const int64_t i64_values[] = {std::numeric_limits<int64_t>::min(), -1,
                                std::numeric_limits<int64_t>::max()};
  const uint8_t u8_values[] = {0, 1, 128, 255, 7};
  const TensorMap tensors{
      {"layer1.0.conv1.weight", from_bytes({2, 3}, DType::f32, f32_values)},
      {"layer1.0.bn1.running_var", patterned({3, 1}, DType::f64, 3)},
      {"half.bf16", from_bytes({2, 3}, DType::bf16, bf16_bits)},
      {"half.f16", from_bytes({6}, DType::f16, f16_bits)},
      {"index.i32", patterned({2, 2, 2}, DType::i32, 9)},
      {"index.i64", from_bytes({3}, DType::i64, i64_values)},
      {"bytes.u8", from_bytes({5}, DType::u8, u8_values)},
      {"empty", Tensor::empty({0}, DType::f32)},
      {"empty.inner", Tensor::empty({2, 0, 3}, DType::i64)},
      {"bn1.num_batches_tracked", from_bytes({}, DType::i64, &i64_values[2])},
  };
  const std::map<std::string, std::string> metadata{
      {"format", "pt"}, {"epoch", "12"}, {"note", "quotes \" and\nnewlines, ünïcode"}, {"", ""}};

  TempDir dir;
  const std::string path = dir / "model.safetensors";
  save_safetensors(path, tensors, metadata);
  const SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    REQUIRE(file.tensors.count(name) == 1);
    check_same_tensor(file.tensors.at(name), t, name);
  }

  // The data section starts 8-byte aligned.
  const std::string bytes = read_file(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  CHECK(header_bytes % 8 == 0);

  // No metadata: the file has no __metadata__ entry and reads back with none.
  save_safetensors(path, {{"x", patterned({4}, DType::f32, 1)}});
  CHECK(read_file(path).find("__metadata__") == std::string::npos);
  const SafetensorsFile plain = load_safetensors(path);
  CHECK(plain.metadata.empty());
  CHECK(plain.tensors.size() == 1);
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: the byte layout matches a hand-assembled file") {
  const float b[] = {1.0f, -2.0f};
  const int64_t c = -1;
  const TensorMap tensors{{"b", from_bytes({2}, DType::f32, b)},
                          {"a", Tensor::from_vector(std::vector<uint8_t>{1, 2, 3}, {3})},
                          {"c", from_bytes({}, DType::i64, &c)}};
  // Metadata first, then tensors in name order with fields dtype, shape, data_offsets; the
  // 204-byte JSON is padded with 4 spaces to 208 = 0xd0; data follows in name order.
  const std::string expected =
      std::string("\xd0\0\0\0\0\0\0\0", 8) +
      R"({"__metadata__":{"epoch":"7","format":"pt"},)"
      R"("a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},)"
      R"("c":{"dtype":"I64","shape":[],"data_offsets":[11,19]}})"
      "    " +
      std::string("\x01\x02\x03", 3) +                      // a
      std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8) +  // b: 1.0f, -2.0f
      std::string(8, '\xff');                               // c: -1
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"epoch", "7"}};
  CHECK(serialize_safetensors(tensors, metadata, "pinned") == expected);

  TempDir dir;
  save_safetensors(dir / "pinned.safetensors", tensors, metadata);
  CHECK(read_file(dir / "pinned.safetensors") == expected);

  const SafetensorsFile file = parse_safetensors(expected, "pinned");
  CHECK(file.metadata == metadata);
  for (const auto& [name, t] : tensors) check_same_tensor(file.tensors.at(name), t, name);
}

TEST_CASE("safetensors: files from other writers are accepted") {
  // Other key order, whitespace, no padding, several empty tensors sharing an offset,
  // data not in name order.
  const std::string header =
      "{ \"z\" : {\"data_offsets\": [0, 4], \"shape\": [2], \"dtype\": \"BF16\"},\n"
      "  \"e1\": {\"shape\": [0, 5], \"dtype\": \"F64\", \"data_offsets\": [4, 4]},\n"
      "  \"e2\": {\"shape\": [0], \"dtype\": \"U8\", \"data_offsets\": [4, 4]},\n"
      "  \"a\": {\"dtype\": \"U8\", \"shape\": [1, 1], \"data_offsets\": [4, 5]}}\n";
  const SafetensorsFile file =
      parse_safetensors(image(header, std::string("\x80\x3f\x00\x40\x07", 5)), "foreign");
  REQUIRE(file.tensors.size() == 4);
  CHECK(file.tensors.at("z").to_double() == std::vector<double>{1.0, 2.0});
  CHECK(file.tensors.at("e1").shape() == Shape{0, 5});
  CHECK(file.tensors.at("a").to_vector<uint8_t>() == std::vector<uint8_t>{7});
  CHECK(file.metadata.empty());
}

TEST_CASE("safetensors: malformed files are rejected with the reason") {
  const float values[] = {1.5f, -2.5f};
  const std::string good =
      serialize_safetensors({{"w", from_bytes({2}, DType::f32, values)}}, {}, "good");
  REQUIRE(parse_safetensors(good, "good").tensors.size() == 1);

  // Truncation at every level.
  expect_rejected(good.substr(0, good.size() - 1), "run past the end of the data");
  expect_rejected("", "shorter than the 8-byte header length");
  expect_rejected(std::string("\x10\0\0", 3), "shorter than the 8-byte header length");
  expect_rejected(good.substr(0, 20), "runs past the end of the file");
  expect_rejected(le64(1000) + "{}", "runs past the end of the file");
  expect_rejected(le64(uint64_t(1) << 62) + "{}", "absurdly large");
  expect_rejected(le64(~uint64_t(0)) + "{}", "absurdly large");
  expect_rejected(le64(0), "header is empty");

  // Not JSON, or not an object.
  expect_rejected(image(R"({"w": {"dtype": "F32",)", ""), "header is not valid JSON");
  expect_rejected(image("{\"w\xff\": 1}", ""), "header is not valid JSON");  // bad UTF-8
  expect_rejected(image("[1, 2]", ""), "not a JSON object");
  expect_rejected(image("  {}", ""), "starting with '{'");
  expect_rejected(image(R"({"w": 3})", ""), "entry must be an object");

  // Fields.
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2]})", 8), "missing field \"data_offsets\"");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1})", 8),
                  "unexpected field \"x\"");
  expect_rejected(one_entry(R"({"dtype":"F33","shape":[2],"data_offsets":[0,8]})", 8),
                  "unknown dtype \"F33\"");
  expect_rejected(one_entry(R"({"dtype":"I8","shape":[2],"data_offsets":[0,2]})", 2),
                  "unknown dtype");
  expect_rejected(one_entry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})", 8),
                  "dtype must be a string");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]})", 8),
                  "shape must be a list of non-negative integers");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", 8),
                  "shape must be a list of non-negative integers");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", 8),
                  "shape must be a list of non-negative integers");
  expect_rejected(
      one_entry(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]})", 0),
      "shape must be a list of non-negative integers");

  // Huge shapes: 2^32 * 2^32 wraps to 0 elements in unchecked 64-bit arithmetic, and 2^61 I64
  // elements are 2^64 bytes.
  expect_rejected(
      one_entry(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0),
      "too many elements");
  expect_rejected(
      one_entry(R"({"dtype":"U8","shape":[3037000500,3037000500],"data_offsets":[0,0]})", 0),
      "too many elements");
  expect_rejected(
      one_entry(R"({"dtype":"I64","shape":[2305843009213693952],"data_offsets":[0,0]})", 0),
      "too many bytes");

  // Offsets.
  for (const char* offsets :
       {"[0,8.0]", "[0.5,8]", "[\"0\",\"8\"]", "[8]", "[0,8,16]", "[-8,0]", "{}"})
    expect_rejected(
        one_entry(cat(R"({"dtype":"F32","shape":[2],"data_offsets":)", offsets, "}"), 8),
        "data_offsets must be two non-negative integers");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})", 8),
                  "end before they begin");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})", 16),
                  "hold 12 bytes but F32 [2,2] needs 16 (size mismatch)");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 6),
                  "run past the end of the data (6 bytes)");

  // The tensors must tile the data section.
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  expect_rejected(image(cat(R"({"a":{)", f32x2, R"(,"data_offsets":[0,8]},"b":{)", f32x2,
                            R"(,"data_offsets":[4,12]}})"),
                        std::string(12, '\x11')),
                  "tensor \"b\" data [4, 12) overlaps tensor \"a\" data [0, 8)");
  expect_rejected(image(cat(R"({"a":{)", f32x2, R"(,"data_offsets":[0,8]},"b":{)", f32x2,
                            R"(,"data_offsets":[0,8]}})"),
                        std::string(8, '\x11')),
                  "overlaps");
  expect_rejected(image(cat(R"({"a":{)", f32x2, R"(,"data_offsets":[0,8]},"b":{)", f32x2,
                            R"(,"data_offsets":[12,20]}})"),
                        std::string(20, '\x11')),
                  "hole in the data: bytes [8, 12)");
  expect_rejected(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 9),
                  "1 trailing bytes");

  // Metadata and duplicates.
  expect_rejected(image(R"({"__metadata__":{"k":1}})", ""), "value of \"k\" must be a string");
  expect_rejected(image(R"({"__metadata__":["k","v"]})", ""), "__metadata__ must be an object");
  expect_rejected(image(cat(R"({"a":{)", f32x2, R"(,"data_offsets":[0,8]},"a":{)", f32x2,
                            R"(,"data_offsets":[0,8]}})"),
                        std::string(8, '\x11')),
                  "the key \"a\" twice");
  expect_rejected(one_entry(R"({"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,8]})", 8),
                  "the key \"dtype\" twice");
  expect_rejected(image(R"({"__metadata__":{"k":"v","k":"w"}})", ""), "the key \"k\" twice");

  // A control character in a name stays escaped: the error is still one line.
  expect_rejected(image("{\"bad\\nname\": 3}", ""), R"(tensor "bad\nname")");
}

TEST_CASE("safetensors: save rejects what it cannot write, load names the file") {
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  const Tensor t = patterned({2}, DType::f32, 5);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"__metadata__", t}}),
                       doctest::Contains("\"__metadata__\" is reserved"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"w", Tensor()}}),
                       doctest::Contains("tensor \"w\" is undefined"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, {{"w\xff", t}}),
                       doctest::Contains("must be valid UTF-8"), Error);
  CHECK(dir.listing().empty());

  CHECK_THROWS_WITH_AS(load_safetensors(path), contains(path + ": cannot open"), Error);
  save_safetensors(path, {{"w", t}});
  const std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() - 3));
  CHECK_THROWS_WITH_AS(load_safetensors(path),
                       contains(path + ": tensor \"w\": data_offsets [0,8] run past"), Error);
}

TEST_CASE("write_file_atomic: replaces fully, fails cleanly, leaves no temporary files") {
  TempDir dir;
  const std::string path = dir / "state.bin";
  write_file_atomic(path, std::string(10000, 'a') + "tail");
  write_file_atomic(path, "short");
  CHECK(read_file(path) == "short");
  write_file_atomic(path, std::string("\0bin\0", 5));
  CHECK(read_file(path) == std::string("\0bin\0", 5));
  write_file_atomic(path, "");
  CHECK(read_file(path).empty());
  CHECK(dir.listing() == std::vector<std::string>{"state.bin"});

  // A missing folder: the error names the path and the reason; nothing is created.
  const std::string missing = dir / "no_such_folder/state.bin";
  CHECK_THROWS_WITH_AS(write_file_atomic(missing, "x"),
                       contains(missing + ": cannot create temporary file"), Error);
  CHECK_THROWS_WITH_AS(write_file_atomic(missing, "x"),
                       doctest::Contains("No such file or directory"), Error);
  CHECK(dir.listing() == std::vector<std::string>{"state.bin"});

  // The rename fails (path is a non-empty folder): the temporary file is removed again and
  // the folder is untouched.
  fs::create_directories(dir.path / "taken" / "inner");
  const std::string taken = dir / "taken";
  CHECK_THROWS_WITH_AS(write_file_atomic(taken, "x"), contains(taken + ": cannot rename"), Error);
  CHECK(dir.listing() == std::vector<std::string>{"state.bin", "taken"});
  CHECK(fs::is_directory(dir.path / "taken" / "inner"));
}

TEST_CASE("write_file_atomic: temporary files of a killed process are swept by the next write") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  // A process killed between creating its temporary file and renaming it leaves one behind. A
  // pid above the kernel's limit (pid_max <= 2^22) never runs; the writer's own pid does.
  const std::string dead = path + ".tmp.99999999.3", mine = path + ".tmp." + std::to_string(::getpid()) + ".99";
  const std::string other = dir / "other.json.tmp.99999999.0";
  for (const std::string& f : {dead, mine, other}) std::ofstream(f) << "half";
  write_file_atomic(path, "whole");
  CHECK(read_file(path) == "whole");
  CHECK(!fs::exists(dead));
  CHECK(fs::exists(mine));   // this process's own, perhaps being written by another thread
  CHECK(fs::exists(other));  // another file's leftovers go when that file is written again
  write_file_atomic(dir / "other.json", "{}");
  CHECK(!fs::exists(other));
}

TEST_CASE("read_file: whole contents, clear errors") {
  TempDir dir;
  std::string big(200000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  write_file_atomic(dir / "big", big);
  CHECK(read_file(dir / "big") == big);
  const std::string missing = dir / "missing";
  CHECK_THROWS_WITH_AS(read_file(missing), contains(missing + ": cannot open: No such file"),
                       Error);
  CHECK_THROWS_WITH_AS(read_file(dir.path.string()), doctest::Contains("is a folder"), Error);
}
