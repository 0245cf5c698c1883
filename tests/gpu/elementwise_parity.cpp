// CUDA elementwise ops against the CPU reference.
#include <doctest/doctest.h>

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

TEST_CASE("parity: dropout draws the same mask on CPU and GPU") {
  const Tensor x = leaf(random_tensor({17, 1000}, 3));
  test::parity([](const auto& in) {
    Generator gen(99);
    return dropout(in[0], 0.5, true, gen);
  }, {x}, "dropout", {0, 0}, {0, 0});
}
