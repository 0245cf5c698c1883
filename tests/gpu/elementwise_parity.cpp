// CUDA elementwise ops against the CPU reference.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/ops/elementwise.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

TEST_CASE("parity: relu, relu6, add, scale, reshape") {
  for (const Shape& s : {Shape{1}, Shape{3, 5, 7, 9}, Shape{129, 257}}) {
    const Tensor x = leaf(random_tensor(s, 1, -8.0, 8.0));
    const Tensor y = leaf(random_tensor(s, 2));
    const std::string tag = " " + shape_str(s);
    test::parity([](const auto& in) { return relu(in[0]); }, {x}, "relu" + tag);
    test::parity([](const auto& in) { return relu6(in[0]); }, {x}, "relu6" + tag);
    test::parity([](const auto& in) { return add(in[0], in[1]); }, {x, y}, "add" + tag);
    test::parity([](const auto& in) { return scale(in[0], 0.7); }, {x}, "scale" + tag);
    test::parity([](const auto& in) { return flatten(in[0]); }, {x}, "flatten" + tag);
  }
}

TEST_CASE("parity: NaN and infinities through every elementwise op keep their class on the GPU") {
  // ReLU and ReLU6 keep NaN (a diverging run must reach the non-finite-loss check), clamp +-inf.
  const std::vector<float> special{NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 7.0f, -3.0f, 6.0f, NAN};
  const Tensor x = Tensor::from_vector(special, {9});
  const Tensor y = Tensor::from_vector(std::vector<float>{1, -INFINITY, INFINITY, NAN, 2, 3, 4, NAN, 0}, {9});
  auto both = [&](const char* what, auto op) {
    const Tensor cpu = op(x, y), gpu = op(x.to(Device::cuda), y.to(Device::cuda));
    test::expect_close(gpu, cpu, {0, 0}, what);
  };
  both("relu", [](const Tensor& a, const Tensor&) { return relu(a); });
  both("relu6", [](const Tensor& a, const Tensor&) { return relu6(a); });
  both("add", [](const Tensor& a, const Tensor& b) { return add(a, b); });
  both("add_relu", [](const Tensor& a, const Tensor& b) { return add_relu(a, b); });
  both("scale", [](const Tensor& a, const Tensor&) { return scale(a, 0.5); });
  const std::vector<float> r = relu(x.to(Device::cuda)).to_vector<float>();
  CHECK(std::isnan(r[0]));
  CHECK(std::isnan(r[8]));
  CHECK(r[1] == INFINITY);
  CHECK(r[2] == 0.0f);
}

TEST_CASE("parity: dropout draws the same mask on CPU and GPU") {
  const Tensor x = leaf(random_tensor({17, 1000}, 3));
  test::parity([](const auto& in) {
    Generator gen(99);
    return dropout(in[0], 0.5, true, gen);
  }, {x}, "dropout", {0, 0}, {0, 0});
}
