// max_pool2d, avg_pool2d, global_avg_pool: forward against naive loops over the padded window,
// the max-pool tie rule, backward against central finite differences in f64, bad shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/ops/pooling.h"
#include "engine/rng.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

struct Config {
  Shape shape;
  int kernel, stride, padding;
};

// Kernel 2 stride 2, kernel 3 stride 2 padding 1 (overlapping), odd sizes whose last row or
// column no window reaches, stride 1, and one channel.
const Config kConfigs[] = {
    {{2, 3, 8, 6}, 2, 2, 0}, {{2, 3, 7, 5}, 3, 2, 1}, {{1, 2, 7, 5}, 2, 2, 0},
    {{1, 2, 5, 4}, 3, 1, 1}, {{2, 1, 7, 5}, 3, 3, 0},
};

std::string config_name(const Config& c) {
  return shape_str(c.shape) + " kernel " + std::to_string(c.kernel) + " stride " +
         std::to_string(c.stride) + " padding " + std::to_string(c.padding);
}

// Visits every output (flat index o) and, for each of its kernel^2 window positions, the flat
// input index or -1 where the position falls into the padding.
template <class F>
void for_each_window_position(const Shape& s, int k, int stride, int pad, F&& f) {
  const int64_t H = s[2], W = s[3], Ho = (H + 2 * pad - k) / stride + 1,
                Wo = (W + 2 * pad - k) / stride + 1;
  for (int64_t plane = 0; plane < s[0] * s[1]; ++plane)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int kh = 0; kh < k; ++kh)
          for (int kw = 0; kw < k; ++kw) {
            const int64_t ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
            const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
            f((plane * Ho + oh) * Wo + ow, inside ? (plane * H + ih) * W + iw : -1);
          }
}

// The padded input is -inf (max) or 0 (average over all kernel^2 positions).
std::vector<double> naive_pool(const Tensor& x, int k, int stride, int pad, bool max) {
  const std::vector<double> xv = x.to_double();
  const Shape& s = x.shape();
  const int64_t Ho = (s[2] + 2 * pad - k) / stride + 1, Wo = (s[3] + 2 * pad - k) / stride + 1;
  std::vector<double> y(static_cast<size_t>(s[0] * s[1] * Ho * Wo),
                        max ? -std::numeric_limits<double>::infinity() : 0.0);
  for_each_window_position(s, k, stride, pad, [&](int64_t o, int64_t i) {
    const double v = i >= 0 ? xv[i] : (max ? -std::numeric_limits<double>::infinity() : 0.0);
    y[o] = max ? std::max(y[o], v) : y[o] + v / (k * k);
  });
  return y;
}

// Each output's gradient goes to the first maximum of its window in row-major order.
std::vector<double> naive_max_pool_backward(const Tensor& x, const Tensor& dy, int k, int stride,
                                            int pad) {
  const std::vector<double> xv = x.to_double(), g = dy.to_double();
  std::vector<int64_t> argmax(g.size(), -1);
  for_each_window_position(x.shape(), k, stride, pad, [&](int64_t o, int64_t i) {
    if (i >= 0 && (argmax[o] < 0 || xv[i] > xv[argmax[o]])) argmax[o] = i;
  });
  std::vector<double> dx(xv.size(), 0.0);
  for (size_t o = 0; o < g.size(); ++o) dx[argmax[o]] += g[o];
  return dx;
}

// A random permutation of 0.1 * (0, 1, ..., n-1) - 1: distinct values 0.1 apart, so each
// window's argmax stays put under a finite-difference step.
Tensor distinct_tensor(const Shape& shape, uint64_t seed) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1 * static_cast<double>(i) - 1.0;
  Generator gen(seed);
  for (size_t i = v.size() - 1; i > 0; --i) std::swap(v[i], v[gen.below(i + 1)]);
  return Tensor::from_vector(v, shape);
}

}  // namespace

TEST_CASE("max_pool2d and avg_pool2d: forward matches naive loops") {
  for (const Config& c : kConfigs) {
    const Tensor x = random_tensor(c.shape, 1, -2.0, 2.0);
    const Tensor ymax = max_pool2d(x, c.kernel, c.stride, c.padding);
    const Tensor yavg = avg_pool2d(x, c.kernel, c.stride, c.padding);
    const int64_t Ho = (c.shape[2] + 2 * c.padding - c.kernel) / c.stride + 1;
    const int64_t Wo = (c.shape[3] + 2 * c.padding - c.kernel) / c.stride + 1;
    CHECK(ymax.shape() == Shape{c.shape[0], c.shape[1], Ho, Wo});
    test::expect_close(ymax.to_double(), naive_pool(x, c.kernel, c.stride, c.padding, true), {0, 0},
                       "max_pool2d " + config_name(c));
    test::expect_close(yavg.to_double(), naive_pool(x, c.kernel, c.stride, c.padding, false),
                       test::kForward, "avg_pool2d " + config_name(c));
  }
  CHECK(max_pool2d(random_tensor({1, 1, 7, 5}, 2), 3, 2, 1).shape() == Shape{1, 1, 4, 3});
}

TEST_CASE("max_pool2d: ties send the gradient to the first maximum and NaN propagates") {
  for (const Config& c : kConfigs) {
    // Values from {1, 2, 3, 4}: most windows hold ties.
    std::vector<double> v = random_tensor(c.shape, 3, 0.0, 4.0, DType::f64).to_double();
    for (double& e : v) e = std::floor(e) + 1.0;
    const Tensor x = leaf(Tensor::from_vector(v, c.shape));
    const Tensor y = max_pool2d(x, c.kernel, c.stride, c.padding);
    const Tensor dy = random_tensor(y.shape(), 4, -1.0, 1.0, DType::f64);
    autograd::backward(y, dy);
    test::expect_close(x.grad().to_double(),
                       naive_max_pool_backward(x, dy, c.kernel, c.stride, c.padding), {1e-15, 0},
                       "max_pool2d ties " + config_name(c));
  }
  std::vector<float> v = {1.0f, NAN, 3.0f, 2.0f};
  CHECK(std::isnan(max_pool2d(Tensor::from_vector(v, {1, 1, 2, 2}), 2, 2).item()));
}

TEST_CASE("max_pool2d and avg_pool2d: backward matches finite differences") {
  for (const Config& c : kConfigs) {
    const Tensor xd = leaf(distinct_tensor(c.shape, 5).to(DType::f64));
    test::gradcheck(
        [c](const auto& in) { return max_pool2d(in[0], c.kernel, c.stride, c.padding); }, {xd},
        "max_pool2d " + config_name(c));
    const Tensor x = leaf(random_tensor(c.shape, 6, -1.0, 1.0, DType::f64));
    test::gradcheck(
        [c](const auto& in) { return avg_pool2d(in[0], c.kernel, c.stride, c.padding); }, {x},
        "avg_pool2d " + config_name(c));
  }
}

TEST_CASE("global_avg_pool: forward and backward") {
  for (const Shape& s : {Shape{2, 3, 7, 5}, Shape{1, 1, 1, 1}, Shape{3, 4, 4, 4}}) {
    const Tensor x = random_tensor(s, 7, -1.0, 3.0);
    const std::vector<double> xv = x.to_double();
    const int64_t HW = s[2] * s[3];
    std::vector<double> ref(static_cast<size_t>(s[0] * s[1]), 0.0);
    for (size_t i = 0; i < xv.size(); ++i) ref[i / HW] += xv[i] / static_cast<double>(HW);
    const Tensor y = global_avg_pool(x);
    CHECK(y.shape() == Shape{s[0], s[1]});
    test::expect_close(y.to_double(), ref, test::kForward, "global_avg_pool " + shape_str(s));
    test::gradcheck([](const auto& in) { return global_avg_pool(in[0]); }, {leaf(x.to(DType::f64))},
                    "global_avg_pool " + shape_str(s));
  }
}

TEST_CASE("pooling: bad inputs") {
  CHECK_THROWS_WITH_AS(max_pool2d(random_tensor({1, 1, 2, 2}, 8), 3, 1),
                       doctest::Contains("max_pool2d: window 3x3 is larger than the padded input "
                                         "2x2 (x (1, 1, 2, 2), padding 0)"),
                       Error);
  CHECK_THROWS_WITH_AS(
      avg_pool2d(random_tensor({1, 1, 4, 4}, 9), 3, 2, 2),
      doctest::Contains("avg_pool2d: padding must be in [0, kernel / 2] = [0, 1], got 2"), Error);
  CHECK_THROWS_WITH_AS(
      max_pool2d(random_tensor({1, 1, 4, 4}, 10), 2, 0),
      doctest::Contains(
          "max_pool2d: kernel and stride must be positive, got kernel 2 and stride 0"),
      Error);
  CHECK_THROWS_WITH_AS(max_pool2d(random_tensor({3, 7, 5}, 11), 2, 2),
                       doctest::Contains("max_pool2d: x (N, C, H, W) must be 4-d, got (3, 7, 5)"),
                       Error);
  CHECK_THROWS_WITH_AS(
      avg_pool2d(Tensor::empty({1, 1, 0, 3}), 2, 2, 1),
      doctest::Contains("avg_pool2d: x (1, 1, 0, 3) has no spatial elements to pool"), Error);
  CHECK_THROWS_WITH_AS(global_avg_pool(random_tensor({2, 3}, 12)),
                       doctest::Contains("global_avg_pool: x (N, C, H, W) must be 4-d, got (2, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(global_avg_pool(Tensor::empty({2, 3, 0, 4})),
                       doctest::Contains("global_avg_pool: x (2, 3, 0, 4) has no spatial elements"),
                       Error);
}
