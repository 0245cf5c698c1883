// relu, relu6, add, scale, reshape/flatten, dropout: forward against naive loops, backward
// against central finite differences in f64.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

TEST_CASE("relu and relu6: forward matches the definition") {
  const Tensor x = random_tensor({2, 3, 4, 5}, 1, -8.0, 8.0);
  const std::vector<double> xv = x.to_double();
  std::vector<double> r(xv.size()), r6(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    r[i] = xv[i] > 0 ? xv[i] : 0;
    r6[i] = xv[i] < 0 ? 0 : (xv[i] > 6 ? 6 : xv[i]);
  }
  test::expect_close(relu(x).to_double(), r, {0, 0}, "relu");
  test::expect_close(relu6(x).to_double(), r6, {0, 0}, "relu6");
}

TEST_CASE("elementwise ops: backward matches finite differences") {
  // Inputs avoid the kinks at 0 and 6 by more than eps.
  const Tensor x = leaf(random_tensor({3, 7}, 2, -8.0, 8.0, DType::f64));
  const Tensor y = leaf(random_tensor({3, 7}, 3, -1.0, 1.0, DType::f64));
  test::gradcheck([](const auto& in) { return relu(in[0]); }, {x}, "relu");
  test::gradcheck([](const auto& in) { return relu6(in[0]); }, {x}, "relu6");
  test::gradcheck([](const auto& in) { return add(in[0], in[1]); }, {x, y}, "add");
  test::gradcheck([](const auto& in) { return scale(in[0], -2.5); }, {x}, "scale");
  test::gradcheck([](const auto& in) { return flatten(reshape(in[0], {3, 1, 7})); }, {x}, "reshape");
  test::gradcheck([](const auto& in) { return add(relu(in[0]), in[0]); }, {x},
                  "a tensor used twice accumulates both gradients");
  test::gradcheck([](const auto& in) {
    Generator gen(11);
    return dropout(in[0], 0.3, true, gen);
  }, {x}, "dropout");
}

TEST_CASE("relu, add_relu and relu6 backward at the edges: +inf passes (PyTorch), 0 and the cap do not") {
  const float inf = INFINITY;
  const std::vector<float> values{inf, 0.0f, -1.0f, 2.0f, 6.0f, 7.0f};
  const Tensor seed = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {6});
  auto grad_of = [&](auto f) {
    const Tensor x = leaf(Tensor::from_vector(values, {6}));
    const Tensor zero = leaf(Tensor::zeros({6}));
    autograd::backward(f(x, zero), seed);
    return x.grad().to_vector<float>();
  };
  const std::vector<float> relu_grad{1, 0, 0, 4, 5, 6};
  CHECK(grad_of([](const Tensor& x, const Tensor&) { return relu(x); }) == relu_grad);
  CHECK(grad_of([](const Tensor& x, const Tensor& z) { return add_relu(x, z); }) == relu_grad);
  CHECK(grad_of([](const Tensor& x, const Tensor&) { return relu6(x); }) == std::vector<float>{0, 0, 0, 4, 0, 0});
}

TEST_CASE("add and scale: values and shape checks") {
  const Tensor a = random_tensor({4, 5}, 4);
  const Tensor b = random_tensor({4, 5}, 5);
  const std::vector<double> av = a.to_double(), bv = b.to_double();
  std::vector<double> sum(av.size()), sc(av.size());
  for (size_t i = 0; i < av.size(); ++i) sum[i] = double(float(av[i]) + float(bv[i])), sc[i] = 3.0 * av[i];
  test::expect_close(add(a, b).to_double(), sum, {0, 0}, "add");
  test::expect_close(scale(a, 3.0).to_double(), sc, {1e-6, 1e-6}, "scale");
  CHECK_THROWS_WITH_AS(add(a, random_tensor({5, 4}, 6)),
                       doctest::Contains("add: a (4, 5) and b (5, 4) must have the same shape"), Error);
  CHECK(flatten(random_tensor({2, 3, 4, 5}, 7)).shape() == Shape{2, 60});
}

TEST_CASE("dropout: rate, scaling, determinism and eval mode") {
  const Tensor x = Tensor::full({100000}, 1.0);
  Generator g1(5), g2(5);
  const std::vector<double> y1 = dropout(x, 0.25, true, g1).to_double();
  const std::vector<double> y2 = dropout(x, 0.25, true, g2).to_double();
  CHECK(y1 == y2);
  CHECK(g1.offset() == 100000);
  int64_t zeros = 0, others = 0;
  for (double v : y1) {
    zeros += v == 0.0;
    others += v != 0.0 && std::abs(v - 1.0 / 0.75) > 1e-6;
  }
  CHECK(others == 0);  // every element is dropped or scaled by 1 / (1 - p)
  CHECK(static_cast<double>(zeros) / 100000.0 == doctest::Approx(0.25).epsilon(0.03));
  Generator g3(5);
  CHECK(dropout(x, 0.25, false, g3).shares_storage(x));
  CHECK_THROWS_WITH_AS(dropout(x, 1.0, true, g3), doctest::Contains("dropout: p must be in [0, 1)"), Error);
}
