// CUDA cross_entropy, argmax and correct counts against the CPU reference.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/ops/loss.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

// Labels uniform in [0, c): f64 draws in [0, c) truncated to integers.
Tensor random_labels(int64_t n, int64_t c, uint64_t seed) {
  return random_tensor({n}, seed, 0.0, static_cast<double>(c), DType::f64).to(DType::i64);
}

}  // namespace

TEST_CASE("parity: cross_entropy, all reductions, with and without weights") {
  for (const Shape& s :
       {Shape{7, 3}, Shape{129, 100}, Shape{1, 10}, Shape{5, 1}, Shape{33, 1000}}) {
    const Tensor logits = leaf(random_tensor(s, 1, -5.0, 5.0));
    const Tensor labels = random_labels(s[0], s[1], 2);
    const Tensor weights = random_tensor({s[0]}, 3, 0.0, 2.0);
    const std::string tag = " " + shape_str(s);
    test::parity([](const auto& in) { return cross_entropy(in[0], in[1]); }, {logits, labels},
                 "cross_entropy mean" + tag);
    test::parity([](const auto& in) { return cross_entropy(in[0], in[1], Reduction::none); },
                 {logits, labels}, "cross_entropy none" + tag);
    test::parity([](const auto& in) { return cross_entropy(in[0], in[1], Reduction::mean, in[2]); },
                 {logits, labels, weights}, "weighted cross_entropy mean" + tag);
    test::parity([](const auto& in) { return cross_entropy(in[0], in[1], Reduction::none, in[2]); },
                 {logits, labels, weights}, "weighted cross_entropy none" + tag);
  }
}

TEST_CASE("parity: cross_entropy stays finite for huge logits, and the mean is deterministic") {
  // Logits of magnitude ~1000. logsumexp is rounded at that magnitude (f32 spacing 6.1e-5), so
  // a near-zero loss (label = argmax) may differ by an ulp of 1000 between the two sums' orders:
  // forward atol 1e-4 instead of 1e-5.
  const Tensor logits = leaf(random_tensor({65, 37}, 4, -1000.0, 1000.0));
  const Tensor labels = random_labels(65, 37, 5);
  test::parity([](const auto& in) { return cross_entropy(in[0], in[1], Reduction::none); },
               {logits, labels}, "cross_entropy huge logits", {1e-4, 1e-4});
  const Tensor x = random_tensor({1000, 10}, 6, -3.0, 3.0, DType::f32, Device::cuda);
  const Tensor y = random_labels(1000, 10, 7).to(Device::cuda);
  CHECK(cross_entropy(x, y).item() == cross_entropy(x, y).item());
}

TEST_CASE("parity: cross_entropy reports the first bad label after the kernel") {
  const Tensor logits = random_tensor({9, 3}, 8, -1.0, 1.0, DType::f32, Device::cuda);
  const Tensor labels =
      Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 3, 2, -4, 0}, {9}, Device::cuda);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels),
                       doctest::Contains("cross_entropy: label 3 at index 5 is outside [0, 3)"),
                       Error);
  const Tensor negative =
      Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 0, 2, -4, 0}, {9}, Device::cuda);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, negative, Reduction::none),
                       doctest::Contains("cross_entropy: label -4 at index 7 is outside [0, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, Tensor::zeros({9}, DType::i64)),
                       doctest::Contains("cross_entropy: tensors on different devices"), Error);
}

TEST_CASE("parity: argmax with NaN and infinite logits picks the first NaN, as the CPU and PyTorch") {
  // NaN in the last column, beside +inf, twice in a row, everywhere; rows of 4 to 1000 columns, so
  // NaNs land in every position of the warp reduction, which must not lose a NaN lane.
  for (int64_t c : {4, 33, 64, 1000}) {
    std::vector<float> v = random_tensor({6, c}, 4, -3.0, 3.0).to_vector<float>();
    v[0 * c + c - 1] = NAN;                        // last column only
    v[1 * c + 0] = INFINITY, v[1 * c + c / 2] = NAN;  // NaN beats +inf
    v[2 * c + c / 3] = NAN, v[2 * c + c - 1] = NAN;   // the first of two
    v[3 * c + 1] = INFINITY;                       // no NaN: +inf
    for (int64_t j = 0; j < c; ++j) v[4 * c + j] = NAN;  // all NaN: column 0
    const Tensor x = Tensor::from_vector(v, {6, c});
    const std::vector<int64_t> cpu = argmax(x).to_vector<int64_t>();
    CHECK(cpu[0] == c - 1);
    CHECK(cpu[1] == c / 2);
    CHECK(cpu[4] == 0);
    CHECK_MESSAGE(argmax(x.to(Device::cuda)).to_vector<int64_t>() == cpu, "argmax with NaN, " << c << " columns");
  }
}

TEST_CASE("parity: argmax and correct counts, ties included") {
  for (const Shape& s :
       {Shape{7, 3}, Shape{129, 100}, Shape{1000, 10}, Shape{3, 1000}, Shape{4, 1}}) {
    // Values on a coarse grid so that rows have tied maxima, also across warp lanes.
    std::vector<double> v = random_tensor(s, 9, -3.0, 3.0, DType::f64).to_double();
    for (double& e : v) e = std::round(e);
    const Tensor x = Tensor::from_vector(v, s).to(DType::f32);
    const Tensor labels = random_labels(s[0], s[1], 10);
    const std::string tag = " " + shape_str(s);
    const std::vector<int64_t> cpu = argmax(x).to_vector<int64_t>();
    CHECK_MESSAGE(argmax(x.to(Device::cuda)).to_vector<int64_t>() == cpu, "argmax" << tag);
    CHECK_MESSAGE(
        count_correct(x.to(Device::cuda), labels.to(Device::cuda)) == count_correct(x, labels),
        "count_correct" << tag);
    const Tensor count = Tensor::full({1}, 5.0, DType::i64, Device::cuda);
    add_correct_count(x.to(Device::cuda), labels.to(Device::cuda), count);
    add_correct_count(x.to(Device::cuda), argmax(x).to(Device::cuda), count);
    CHECK_MESSAGE(count.to_vector<int64_t>()[0] == 5 + count_correct(x, labels) + s[0],
                  "add_correct_count" << tag);
  }
}
