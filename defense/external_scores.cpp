#include "defense/external_scores.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/error.h"
#include "engine/io.h"
#include "engine/parse.h"
#include "engine/safetensors.h"

namespace sieve {

namespace {

// The value of 'key' in a .npy header dict, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (3,), }:
// the text after "'key':" up to the next top-level comma or closing brace.
std::string_view dict_value(std::string_view dict, std::string_view key, const std::string& name) {
  const std::string quoted = "'" + std::string(key) + "':";
  const size_t at = dict.find(quoted);
  SIEVE_CHECK(at != std::string_view::npos, name, ": .npy header has no '", key, "'");
  size_t begin = at + quoted.size();
  while (begin < dict.size() && dict[begin] == ' ') ++begin;
  size_t end = begin;
  int depth = 0;
  for (; end < dict.size(); ++end) {
    const char c = dict[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    if (depth < 0) break;
  }
  return dict.substr(begin, end - begin);
}

void check_values(const std::vector<double>& scores, const std::string& name, int64_t n) {
  SIEVE_CHECK(n < 0 || static_cast<int64_t>(scores.size()) == n, name, ": ", scores.size(),
              " scores, but the training set has ", n, " samples (one score per sample, in index order)");
  for (size_t i = 0; i < scores.size(); ++i)
    SIEVE_CHECK(std::isfinite(scores[i]), name, ": score ", i, " is ", scores[i], " (scores must be finite)");
}

template <class T>
std::vector<double> widen(const char* data, size_t count) {
  std::vector<double> out(count);
  for (size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, data + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

}  // namespace

std::vector<double> parse_npy_scores(std::string_view bytes, const std::string& name, int64_t n) {
  SIEVE_CHECK(bytes.size() >= 10 && bytes.substr(0, 6) == "\x93NUMPY", name, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<uint8_t>(bytes[6]);
  SIEVE_CHECK(major >= 1 && major <= 3, name, ": .npy format version ", major, " is not 1, 2 or 3");
  const auto byte = [&](size_t i) { return uint64_t(static_cast<uint8_t>(bytes[i])); };
  uint64_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = byte(8) | byte(9) << 8, start = 10;
  } else {
    SIEVE_CHECK(bytes.size() >= 12, name, ": truncated .npy header");
    header_len = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24, start = 12;
  }
  SIEVE_CHECK(header_len <= bytes.size() - start, name, ": .npy header of ", header_len,
              " bytes runs past the end of the file (truncated)");
  const std::string_view dict = bytes.substr(start, header_len);
  const std::string_view descr = dict_value(dict, "descr", name);
  const std::string_view order = dict_value(dict, "fortran_order", name);
  const std::string_view shape = dict_value(dict, "shape", name);
  const bool f8 = descr == "'<f8'", f4 = descr == "'<f4'";
  SIEVE_CHECK(f8 || f4, name, ": dtype ", descr, " is not a little-endian float32 or float64 ('<f4' or '<f8')");
  SIEVE_CHECK(order == "False" || order == "True", name, ": fortran_order ", order, " is not True or False");
  // A 1-D shape: "(N,)".
  SIEVE_CHECK(shape.size() >= 4 && shape.front() == '(' && shape.substr(shape.size() - 2) == ",)", name, ": shape ",
              shape, " is not one-dimensional (a vector of one score per sample)");
  const int64_t count = parse_int(shape.substr(1, shape.size() - 3), name + ": shape", 0, INT64_MAX / 8);
  const uint64_t data_bytes = bytes.size() - start - header_len, width = f8 ? 8 : 4;
  SIEVE_CHECK(data_bytes == uint64_t(count) * width, name, ": ", data_bytes, " data bytes for ", count, " ",
              f8 ? "float64" : "float32", " scores (truncated or trailing bytes)");
  const char* data = bytes.data() + start + header_len;
  std::vector<double> scores = f8 ? widen<double>(data, size_t(count)) : widen<float>(data, size_t(count));
  check_values(scores, name, n);
  return scores;
}

std::vector<double> parse_safetensors_scores(std::string_view bytes, const std::string& name, int64_t n) {
  const SafetensorsFile f = parse_safetensors(std::string(bytes), name);
  SIEVE_CHECK(!f.tensors.empty(), name, ": holds no tensor");
  const auto it = f.tensors.size() == 1 ? f.tensors.begin() : f.tensors.find("scores");
  SIEVE_CHECK(it != f.tensors.end(), name, ": holds ", f.tensors.size(), " tensors and none is named 'scores'");
  const Tensor& t = it->second;
  SIEVE_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, name, ": tensor '", it->first, "' is ",
              dtype_name(t.dtype()), ", not F32 or F64");
  SIEVE_CHECK(t.ndim() == 1, name, ": tensor '", it->first, "' has shape ", shape_str(t.shape()),
              ", not one score per sample");
  std::vector<double> scores = t.to(DType::f64).to_vector<double>();
  check_values(scores, name, n);
  return scores;
}

std::vector<double> load_scores(const std::string& path, int64_t n) {
  const std::string ext = std::filesystem::path(path).extension().string();
  SIEVE_CHECK(ext == ".npy" || ext == ".safetensors", path, ": a scores file is .npy or .safetensors");
  const std::string bytes = read_file(path, kMaxScoresFileBytes);
  return ext == ".npy" ? parse_npy_scores(bytes, path, n) : parse_safetensors_scores(bytes, path, n);
}

}  // namespace sieve
