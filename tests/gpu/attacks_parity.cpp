// apply_trigger on a GPU tensor against the CPU: the same bytes for patches and blends (the
// blend rounds the same double operations on both sides, so no tolerance).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "attacks/attacks.h"
#include "engine/rng.h"

using namespace sieve;

namespace {

// Every byte value 0..255 occurs, so blends meet both ends of the range.
std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(std::floor(256.0 * philox_uniform_double(seed, i)));
  return v;
}

// Every third image of n, in a scrambled order.
std::vector<int64_t> some_indices(int64_t n) {
  std::vector<int64_t> idx;
  for (int64_t i = n - 1; i >= 0; i -= 3) idx.push_back(i);
  for (size_t i = 0; i + 1 < idx.size(); i += 2) std::swap(idx[i], idx[i + 1]);
  return idx;
}

void check_parity(const Trigger& t, int64_t n, int64_t c, int64_t h, int64_t w, const std::vector<int64_t>& indices,
                  uint64_t seed) {
  CAPTURE(t.name);
  CAPTURE(shape_str({n, c, h, w}));
  const std::vector<uint8_t> clean = random_bytes(static_cast<size_t>(n * c * h * w), seed);
  const Tensor cpu = Tensor::from_vector(clean, {n, c, h, w});
  const Tensor gpu = Tensor::from_vector(clean, {n, c, h, w}, Device::cuda);
  apply_trigger(t, cpu, indices);
  apply_trigger(t, gpu, indices);
  const std::vector<uint8_t> expected = cpu.to_vector<uint8_t>(), got = gpu.to_vector<uint8_t>();
  REQUIRE(got.size() == expected.size());
  int64_t mismatches = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != expected[i]) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++mismatches;
    }
  const std::string first_mismatch =
      first < 0 ? "none" : cat("byte ", first, ": gpu ", int(got[first]), ", cpu ", int(expected[first]), ", clean ", int(clean[first]));
  CAPTURE(first_mismatch);
  CHECK(mismatches == 0);
  CHECK(expected != clean);  // the trigger did change the indexed images
}

}  // namespace

TEST_CASE("parity: patch triggers write the same bytes on CPU and GPU") {
  check_parity(badnets_trigger(3, 32, 32), 37, 3, 32, 32, some_indices(37), 1);
  check_parity(badnets_trigger(1, 28, 28), 21, 1, 28, 28, some_indices(21), 2);
  check_parity(badnets_trigger(3, 13, 11, 5), 9, 3, 13, 11, some_indices(9), 3);
  check_parity(red_square_trigger(25, 31), 37, 3, 32, 32, some_indices(37), 4);
  check_parity(red_square_trigger(26, 31), 5, 3, 33, 35, {4, 0, 2}, 5);
  // A patterned patch of odd size away from the corner.
  Trigger p;
  p.name = "pattern";
  p.top = 2, p.left = 3, p.height = 5, p.width = 7;
  p.pattern = random_bytes(3 * 5 * 7, 6);
  check_parity(p, 11, 3, 13, 11, some_indices(11), 7);
  // Many images: more threads than one block row, every index.
  std::vector<int64_t> all(1000);
  for (int64_t i = 0; i < 1000; ++i) all[i] = 999 - i;
  check_parity(badnets_trigger(3, 32, 32), 1000, 3, 32, 32, all, 8);
}

TEST_CASE("parity: blend triggers round identically on CPU and GPU") {
  // alpha 0.5 makes exact halves common; 0.1 and 0.2 are inexact in binary, where a fused
  // multiply-add would round differently.
  for (double alpha : {0.1, 0.2, 0.37, 0.5, 1.0}) {
    CAPTURE(alpha);
    check_parity(blend_noise_trigger(3, 32, 32, alpha, 11), 37, 3, 32, 32, some_indices(37), 12);
  }
  check_parity(blend_noise_trigger(1, 28, 28, 0.2, 13), 21, 1, 28, 28, some_indices(21), 14);
  check_parity(blend_noise_trigger(3, 13, 11, 0.3, 15), 9, 3, 13, 11, some_indices(9), 16);
  std::vector<int64_t> all(1000);
  for (int64_t i = 0; i < 1000; ++i) all[i] = i;
  check_parity(blend_noise_trigger(3, 32, 32, 0.2, 17), 1000, 3, 32, 32, all, 18);
}

TEST_CASE("parity: indices are checked before anything runs on the GPU") {
  const std::vector<uint8_t> clean = random_bytes(4 * 3 * 32 * 32, 19);
  const Tensor gpu = Tensor::from_vector(clean, {4, 3, 32, 32}, Device::cuda);
  CHECK_THROWS_WITH_AS(apply_trigger(badnets_trigger(3, 32, 32), gpu, {0, 4}),
                       doctest::Contains("apply_trigger: index 4 outside a dataset of 4"), Error);
  CHECK_THROWS_WITH_AS(apply_trigger(blend_noise_trigger(3, 32, 32, 0.2, 0), gpu, {1, 1}),
                       doctest::Contains("index 1 appears more than once"), Error);
  apply_trigger(badnets_trigger(3, 32, 32), gpu, {});
  CHECK(gpu.to_vector<uint8_t>() == clean);
}
