// conv2d: forward against a naive 7-loop convolution, backward against central finite
// differences in f64, and the shape / dtype checks.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/conv2d.h"
#include "tests/common/check.h"
#include "tests/common/conv_configs.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

using Config = test::ConvConfig;
using test::label;
const auto& kConfigs = test::kSmallConvConfigs;

// y[n][k][p][q] = b[k] + sum over the channels c of k's group and the taps (r, s) of
// x[n][c][p*stride - pad + r][q*stride - pad + s] * w[k][c - first channel of the group][r][s].
std::vector<double> naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Conv2dParams prm) {
  const std::vector<double> xv = x.to_double(), wv = w.to_double();
  const std::vector<double> bv = b.defined() ? b.to_double() : std::vector<double>(w.dim(0), 0.0);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = w.dim(0), Cg = w.dim(1), R = w.dim(2), S = w.dim(3);
  const int64_t Kg = K / prm.groups;
  const int64_t P = (H + 2 * prm.padding - R) / prm.stride + 1;
  const int64_t Q = (W + 2 * prm.padding - S) / prm.stride + 1;
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double sum = bv[k];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t ih = p * prm.stride - prm.padding + r;
                const int64_t iw = q * prm.stride - prm.padding + s;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t ci = (k / Kg) * Cg + c;
                sum += xv[((n * C + ci) * H + ih) * W + iw] * wv[((k * Cg + c) * R + r) * S + s];
              }
          y.push_back(sum);
        }
  return y;
}

}  // namespace

TEST_CASE("conv2d: forward matches a naive convolution") {
  uint64_t seed = 1;
  for (const Config& c : kConfigs) {
    for (DType dt : {DType::f32, DType::f64}) {
      const Tensor x = random_tensor(c.x, seed++, -1.0, 1.0, dt);
      const Tensor w = random_tensor(c.w, seed++, -1.0, 1.0, dt);
      const Tensor b = c.bias ? random_tensor({c.w[0]}, seed++, -1.0, 1.0, dt) : Tensor();
      const Tensor y = conv2d(x, w, b, c.p);
      const std::vector<double> ref = naive_conv2d(x, w, b, c.p);
      const int64_t P = (c.x[2] + 2 * c.p.padding - c.w[2]) / c.p.stride + 1;
      const int64_t Q = (c.x[3] + 2 * c.p.padding - c.w[3]) / c.p.stride + 1;
      CHECK(y.shape() == Shape{c.x[0], c.w[0], P, Q});
      CHECK(y.dtype() == dt);
      const test::Tol tol = dt == DType::f64 ? test::Tol{1e-12, 1e-12} : test::kForward;
      test::expect_close(y.to_double(), ref, tol, label(c) + " " + dtype_name(dt));
    }
  }
}

TEST_CASE("conv2d: backward matches finite differences") {
  uint64_t seed = 100;
  for (const Config& c : kConfigs) {
    const Tensor x = leaf(random_tensor(c.x, seed++, -1.0, 1.0, DType::f64));
    const Tensor w = leaf(random_tensor(c.w, seed++, -1.0, 1.0, DType::f64));
    std::vector<Tensor> in{x, w};
    if (c.bias) in.push_back(leaf(random_tensor({c.w[0]}, seed++, -1.0, 1.0, DType::f64)));
    const Conv2dParams p = c.p;
    test::gradcheck([p](const auto& t) { return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), p); },
                    in, label(c));
  }
}

TEST_CASE("conv2d: an input without grad (first layer) still gets weight and bias gradients") {
  const Tensor x = random_tensor({2, 3, 5, 6}, 7, -1.0, 1.0, DType::f64);
  const Tensor w = leaf(random_tensor({4, 3, 3, 3}, 8, -1.0, 1.0, DType::f64));
  const Tensor b = leaf(random_tensor({4}, 9, -1.0, 1.0, DType::f64));
  test::gradcheck([](const auto& t) { return conv2d(t[0], t[1], t[2], {2, 1, 1}); }, {x, w, b},
                  "first layer");
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("conv2d: gradients accumulate over uses") {
  const Tensor x = leaf(random_tensor({1, 2, 4, 4}, 10));
  const Tensor w = leaf(random_tensor({2, 2, 3, 3}, 11));
  const Tensor seed = random_tensor({1, 2, 4, 4}, 12);
  autograd::backward(conv2d(x, w, Tensor(), {1, 1, 1}), seed);
  const std::vector<double> once = w.grad().to_double();
  autograd::backward(conv2d(x, w, Tensor(), {1, 1, 1}), seed);
  std::vector<double> twice_ref(once);
  for (double& v : twice_ref) v *= 2;
  test::expect_close(w.grad().to_double(), twice_ref, test::kForward, "dw after two backward passes");
}

TEST_CASE("conv2d: bad shapes, parameters and dtypes") {
  const Tensor x = random_tensor({2, 3, 8, 8}, 20);
  const Tensor w = random_tensor({4, 3, 3, 3}, 21);
  CHECK_THROWS_WITH_AS(conv2d(x, random_tensor({4, 2, 3, 3}, 22), Tensor()),
                       doctest::Contains("conv2d: input (2, 3, 8, 8) has 3 channels but weight "
                                         "(4, 2, 3, 3) expects 2 * groups=1"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(random_tensor({1, 4, 5, 5}, 23), random_tensor({3, 2, 3, 3}, 24),
                              Tensor(), {1, 0, 2}),
                       doctest::Contains("conv2d: weight (3, 2, 3, 3) has 3 output channels, not a "
                                         "multiple of groups=2"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, random_tensor({3}, 25)),
                       doctest::Contains("conv2d: bias (3,) must be (4,), one value per output channel"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(random_tensor({1, 3, 2, 2}, 26), w, Tensor()),
                       doctest::Contains("conv2d: kernel 3x3 does not fit the padded input 2x2"), Error);
  CHECK_THROWS_WITH_AS(conv2d(random_tensor({3, 8, 8}, 27), w, Tensor()),
                       doctest::Contains("conv2d: input must be 4-d, got (3, 8, 8)"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w.to(DType::f64), Tensor()),
                       doctest::Contains("conv2d: weight must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, random_tensor({4}, 28, -1.0, 1.0, DType::f64)),
                       doctest::Contains("conv2d: bias must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x.to(DType::i32), w.to(DType::i32), Tensor()),
                       doctest::Contains("conv2d: dtype i32 is not supported"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {0, 0, 1}),
                       doctest::Contains("conv2d: stride must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {1, -1, 1}),
                       doctest::Contains("conv2d: padding must be >= 0, got -1"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor(), {1, 0, 0}),
                       doctest::Contains("conv2d: groups must be >= 1, got 0"), Error);
}
