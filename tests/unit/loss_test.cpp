// cross_entropy, argmax and correct counts: forward against naive loops, backward against
// central finite differences in f64, and the errors for bad labels and shapes.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/loss.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

// l_i = log(sum_j exp(x_ij)) - x_i,label, with the max taken out so huge logits stay finite.
std::vector<double> naive_losses(const Tensor& logits, const std::vector<int64_t>& labels) {
  const int64_t n = logits.dim(0), c = logits.dim(1);
  const std::vector<double> x = logits.to_double();
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double m = x[i * c];
    for (int64_t j = 1; j < c; ++j) m = std::max(m, x[i * c + j]);
    double s = 0.0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(x[i * c + j] - m);
    out[i] = m + std::log(s) - x[i * c + labels[i]];
  }
  return out;
}

Tensor labels_tensor(const std::vector<int64_t>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

}  // namespace

TEST_CASE("cross_entropy: forward matches the definition, also for huge logits") {
  // Rows 0-3 random; row 4 has logits near +1000 and row 5 near -1000, where exp() without
  // the max subtracted would overflow or underflow; row 6 is constant, so its loss is log(C).
  Tensor logits = random_tensor({7, 5}, 1, -3.0, 3.0);
  std::vector<float> v = logits.to_vector<float>();
  const float huge[5] = {1000.0f, 999.0f, 998.0f, -1000.0f, 1000.0f};
  for (int j = 0; j < 5; ++j) {
    v[4 * 5 + j] = huge[j];
    v[5 * 5 + j] = -1000.0f + static_cast<float>(j);
    v[6 * 5 + j] = 2.5f;
  }
  logits = Tensor::from_vector(v, {7, 5});
  const std::vector<int64_t> labels = {0, 4, 2, 1, 2, 3, 1};
  const std::vector<double> ref = naive_losses(logits, labels);
  CHECK(ref[6] == doctest::Approx(std::log(5.0)));

  const Tensor none = cross_entropy(logits, labels_tensor(labels), Reduction::none);
  CHECK(none.shape() == Shape{7});
  test::expect_close(none.to_double(), ref, test::kForward, "per-sample losses");

  const Tensor mean = cross_entropy(logits, labels_tensor(labels));
  CHECK(mean.shape() == Shape{});
  double sum = 0.0;
  for (double l : ref) sum += l;
  test::expect_close(mean.to_double(), {sum / 7.0}, test::kForward, "mean loss");
}

TEST_CASE("cross_entropy: per-sample weights scale the losses and the mean divides by N") {
  const Tensor logits = random_tensor({6, 4}, 2, -2.0, 2.0);
  const std::vector<int64_t> labels = {3, 0, 1, 1, 2, 0};
  const Tensor w = random_tensor({6}, 3, 0.0, 2.0);
  const std::vector<double> ref = naive_losses(logits, labels), wv = w.to_double();
  std::vector<double> weighted(ref.size());
  double sum = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    weighted[i] = wv[i] * ref[i];
    sum += weighted[i];
  }
  test::expect_close(cross_entropy(logits, labels_tensor(labels), Reduction::none, w).to_double(),
                     weighted, test::kForward, "weighted per-sample losses");
  test::expect_close(cross_entropy(logits, labels_tensor(labels), Reduction::mean, w).to_double(),
                     {sum / 6.0}, test::kForward, "weighted mean (divided by N)");
}

TEST_CASE("cross_entropy: backward matches finite differences") {
  const Tensor logits = leaf(random_tensor({4, 5}, 4, -3.0, 3.0, DType::f64));
  const Tensor labels = labels_tensor({2, 0, 4, 2});
  const Tensor w = random_tensor({4}, 5, 0.1, 2.0, DType::f64);
  for (Reduction r : {Reduction::mean, Reduction::none}) {
    const std::string tag = r == Reduction::mean ? "mean" : "none";
    test::gradcheck([&](const auto& in) { return cross_entropy(in[0], labels, r); }, {logits},
                    "cross_entropy " + tag);
    test::gradcheck([&](const auto& in) { return cross_entropy(in[0], labels, r, w); }, {logits},
                    "weighted cross_entropy " + tag);
  }
}

TEST_CASE("cross_entropy: bad labels, dtypes and shapes are rejected") {
  const Tensor logits = random_tensor({4, 3}, 6);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels_tensor({0, 1, -1, 2})),
                       doctest::Contains("cross_entropy: label -1 at index 2 is outside [0, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels_tensor({0, 3, 1, 7})),
                       doctest::Contains("cross_entropy: label 3 at index 1 is outside [0, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, Tensor::from_vector(std::vector<int32_t>{0, 1, 2, 0}, {4})),
      doctest::Contains("cross_entropy: labels must be i64, got i32"), Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, labels_tensor({0, 1, 2})),
      doctest::Contains("logits (4, 3) and labels (3,) disagree on the number of rows"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(random_tensor({4}, 7), labels_tensor({0, 1, 2, 0})),
                       doctest::Contains("cross_entropy: logits must be 2-d, got (4,)"), Error);
  CHECK_THROWS_WITH_AS(
      cross_entropy(logits, labels_tensor({0, 1, 2, 0}), Reduction::mean, random_tensor({3}, 8)),
      doctest::Contains("weights (3,) do not match logits (4, 3)"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels_tensor({0, 1, 2, 0}), Reduction::mean,
                                     random_tensor({4}, 8, 0.0, 1.0, DType::f64)),
                       doctest::Contains("cross_entropy: weights must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, labels_tensor({0, 1, 2, 0}), Reduction::mean,
                                     leaf(random_tensor({4}, 8))),
                       doctest::Contains("weights are constants"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(Tensor::empty({0, 3}), labels_tensor({})),
                       doctest::Contains("cross_entropy: logits (0, 3) are empty"), Error);
}

TEST_CASE("argmax: first maximum wins, and correct counts") {
  // Rows: a tie (-> 1), all equal (-> 0), all -inf (-> 0), increasing (-> 3), a triple tie (-> 0).
  const float inf = INFINITY;
  const std::vector<float> rows = {1, 3, 3, 0, -1, -1, -1, -1, -inf, -inf,
                                   -inf, -inf, 0, 1, 2, 5, 7, -2, 7, 7};
  const Tensor x = Tensor::from_vector(rows, {5, 4});
  CHECK(argmax(x).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 3, 0});

  // Against a naive loop on random rows with many ties (values on a coarse grid).
  const Tensor r = random_tensor({50, 7}, 9, -2.0, 2.0, DType::f64);
  std::vector<double> rv = r.to_double();
  for (double& e : rv) e = std::round(e);
  const Tensor rounded = Tensor::from_vector(rv, {50, 7});
  std::vector<int64_t> ref(50);
  for (int64_t i = 0; i < 50; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < 7; ++j)
      if (rv[i * 7 + j] > rv[i * 7 + best]) best = j;
    ref[i] = best;
  }
  CHECK(argmax(rounded).to_vector<int64_t>() == ref);

  std::vector<int64_t> labels = ref;
  for (size_t i = 0; i < labels.size(); i += 3) labels[i] = (labels[i] + 1) % 7;  // 17 wrong
  CHECK(count_correct(rounded, labels_tensor(labels)) == 33);
  const Tensor count = Tensor::full({1}, 100, DType::i64);
  add_correct_count(rounded, labels_tensor(labels), count);
  add_correct_count(rounded, labels_tensor(ref), count);
  CHECK(count.to_vector<int64_t>()[0] == 100 + 33 + 50);

  // NaN is above every number, as in PyTorch: the first NaN of a row wins, wherever it is.
  const float nan = NAN;
  const Tensor with_nan = Tensor::from_vector(std::vector<float>{1, nan, 3, nan, nan, 0, 0, 0, 2, 2, inf, nan,
                                                                  5, 1, 2, inf},
                                              {4, 4});
  CHECK(argmax(with_nan).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 3, 3});
  CHECK(argmax(with_nan.to(DType::f64)).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 3, 3});

  CHECK_THROWS_WITH_AS(argmax(Tensor::empty({3, 0})),
                       doctest::Contains("argmax: x (3, 0) has no columns"), Error);
  CHECK_THROWS_WITH_AS(count_correct(rounded, labels_tensor({1, 2})),
                       doctest::Contains("count_correct: logits (50, 7) and labels (2,) disagree"),
                       Error);
}
