// Pooling on CUDA against the CPU reference: kernel 2 stride 2, overlapping kernel 3 stride 2
// padding 1, odd sizes, one channel, stride 1, and ResNet-sized inputs.
#include <doctest/doctest.h>

#include "engine/ops/pooling.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

TEST_CASE("parity: max_pool2d and avg_pool2d") {
  struct Config {
    Shape shape;
    int kernel, stride, padding;
  };
  const Config configs[] = {
      {{2, 3, 8, 8}, 2, 2, 0},    {{2, 3, 7, 5}, 3, 2, 1},    {{1, 1, 7, 5}, 2, 2, 0},
      {{3, 5, 9, 11}, 3, 1, 1},   {{2, 1, 10, 7}, 3, 3, 0},   {{2, 4, 33, 17}, 2, 2, 1},
      {{4, 16, 32, 32}, 3, 2, 1}, {{8, 64, 32, 32}, 2, 2, 0},
  };
  for (const Config& c : configs) {
    const Tensor x = leaf(random_tensor(c.shape, 1, -2.0, 2.0));
    const std::string tag = " " + shape_str(c.shape) + " kernel " + std::to_string(c.kernel) +
                            " stride " + std::to_string(c.stride) + " padding " +
                            std::to_string(c.padding);
    test::parity([c](const auto& in) { return max_pool2d(in[0], c.kernel, c.stride, c.padding); },
                 {x}, "max_pool2d" + tag);
    test::parity([c](const auto& in) { return avg_pool2d(in[0], c.kernel, c.stride, c.padding); },
                 {x}, "avg_pool2d" + tag);
  }
}

TEST_CASE("parity: max_pool2d with ties sends each gradient to the same element") {
  // Values from {-1, 0, 1}: nearly every window holds ties, broken by the first-maximum rule.
  const Tensor u = random_tensor({2, 3, 9, 7}, 2, -1.5, 1.5);
  std::vector<float> v = u.to_vector<float>();
  for (float& e : v) e = e < -0.5f ? -1.0f : (e < 0.5f ? 0.0f : 1.0f);
  const Tensor x = leaf(Tensor::from_vector(v, u.shape()));
  test::parity([](const auto& in) { return max_pool2d(in[0], 3, 2, 1); }, {x}, "max_pool2d ties");
}

TEST_CASE("parity: global_avg_pool") {
  for (const Shape& s : {Shape{2, 3, 7, 5}, Shape{1, 1, 1, 1}, Shape{2, 4, 9, 13},
                         Shape{128, 64, 8, 8}, Shape{3, 512, 4, 4}}) {
    const Tensor x = leaf(random_tensor(s, 3, -1.0, 3.0));
    test::parity([](const auto& in) { return global_avg_pool(in[0]); }, {x},
                 "global_avg_pool " + shape_str(s));
  }
}
