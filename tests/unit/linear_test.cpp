// linear: forward against naive loops, backward against central finite differences in f64,
// and the shape / dtype checks.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/linear.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

// y[n][o] = b[o] + sum_i x[n][i] w[o][i]
std::vector<double> naive_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::vector<double> xv = x.to_double(), wv = w.to_double();
  const int64_t N = x.dim(0), in = x.dim(1), out = w.dim(0);
  const std::vector<double> bv = b.defined() ? b.to_double() : std::vector<double>(out, 0.0);
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double sum = bv[o];
      for (int64_t i = 0; i < in; ++i) sum += xv[n * in + i] * wv[o * in + i];
      y.push_back(sum);
    }
  return y;
}

}  // namespace

TEST_CASE("linear: forward matches naive loops") {
  uint64_t seed = 1;
  for (const Shape& s : {Shape{1, 1, 1}, Shape{5, 7, 3}, Shape{9, 33, 10}}) {
    for (bool with_bias : {true, false}) {
      const int64_t N = s[0], in = s[1], out = s[2];
      const Tensor x = random_tensor({N, in}, seed++);
      const Tensor w = random_tensor({out, in}, seed++);
      const Tensor b = with_bias ? random_tensor({out}, seed++) : Tensor();
      const Tensor y = linear(x, w, b);
      CHECK(y.shape() == Shape{N, out});
      test::expect_close(y.to_double(), naive_linear(x, w, b), test::kForward,
                         cat("linear N=", N, " in=", in, " out=", out, with_bias ? " + bias" : ""));
    }
  }
}

TEST_CASE("linear: backward matches finite differences") {
  const Tensor x = leaf(random_tensor({4, 6}, 10, -1.0, 1.0, DType::f64));
  const Tensor w = leaf(random_tensor({3, 6}, 11, -1.0, 1.0, DType::f64));
  const Tensor b = leaf(random_tensor({3}, 12, -1.0, 1.0, DType::f64));
  test::gradcheck([](const auto& t) { return linear(t[0], t[1], t[2]); }, {x, w, b}, "linear + bias");
  test::gradcheck([](const auto& t) { return linear(t[0], t[1], Tensor()); }, {x, w}, "linear");
  const Tensor x_const = random_tensor({4, 6}, 13, -1.0, 1.0, DType::f64);
  test::gradcheck([](const auto& t) { return linear(t[0], t[1], t[2]); }, {x_const, w, b},
                  "linear on an input without grad");
  CHECK_FALSE(x_const.grad().defined());
}

TEST_CASE("linear: channel bias helpers on a 4-d tensor") {
  const Tensor y = random_tensor({2, 3, 2, 2}, 20, -1.0, 1.0, DType::f64);
  const std::vector<double> before = y.to_double();
  const Tensor b = Tensor::from_vector(std::vector<double>{1.0, -2.0, 0.5}, {3});
  add_channel_bias_(y, b);
  std::vector<double> ref(before), sums(3, 0.0);
  for (size_t i = 0; i < ref.size(); ++i) {
    const size_t c = i / 4 % 3;
    ref[i] += b.to_double()[c];
    sums[c] += ref[i];
  }
  test::expect_close(y.to_double(), ref, {1e-12, 1e-12}, "add_channel_bias_");
  test::expect_close(channel_bias_grad(y).to_double(), sums, {1e-12, 1e-12}, "channel_bias_grad");
}

TEST_CASE("linear: bad shapes and dtypes") {
  const Tensor x = random_tensor({4, 3}, 30);
  CHECK_THROWS_WITH_AS(linear(x, random_tensor({5, 2}, 31), Tensor()),
                       doctest::Contains("linear: input (4, 3) has 3 features but weight (5, 2) expects 2"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(x, random_tensor({5, 3}, 32), random_tensor({4}, 33)),
                       doctest::Contains("linear: bias (4,) must be (5,), one value per output feature"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(random_tensor({4, 3, 1}, 34), random_tensor({5, 3}, 35), Tensor()),
                       doctest::Contains("linear: input must be 2-d, got (4, 3, 1)"), Error);
  CHECK_THROWS_WITH_AS(linear(x, random_tensor({5, 3}, 36, -1.0, 1.0, DType::f64), Tensor()),
                       doctest::Contains("linear: weight must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(linear(x.to(DType::i32), random_tensor({5, 3}, 37).to(DType::i32), Tensor()),
                       doctest::Contains("linear: dtype i32 is not supported"), Error);
}
