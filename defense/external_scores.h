// Suspicion scores computed outside sieve (a defense written in Python, say), one per training
// sample, read back so sieve's harness can evaluate them beside its own defenses:
//   .npy          a 1-D float32 or float64 array (NumPy's own format, any version);
//   .safetensors  one 1-D F32 or F64 tensor (named "scores" when there are several).
// Higher means more suspicious. Wrong length, non-finite values and other dtypes are refused
// with one line naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sieve {

// The largest scores file read (a billion float64 scores).
constexpr uint64_t kMaxScoresFileBytes = uint64_t(8) << 30;

// n < 0: any length.
std::vector<double> parse_npy_scores(std::string_view bytes, const std::string& name, int64_t n);
std::vector<double> parse_safetensors_scores(std::string_view bytes, const std::string& name, int64_t n);
// By the file's extension (.npy or .safetensors).
std::vector<double> load_scores(const std::string& path, int64_t n);

}  // namespace sieve
