// batchnorm2d on CUDA against the CPU reference: training and eval, with and without the fused
// ReLU, odd sizes, one channel, uneven and large N*H*W; running stats; run-to-run determinism.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops/batchnorm.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

// Values k / 4 - 2 for k in [0, 16), plus offset. With a fused ReLU the CPU and GPU masks differ
// wherever a pre-activation lies within rounding of 0; on this grid all elements of a channel
// share one threshold, so that takes a whole channel's coincidence instead of one element's in
// a million.
Tensor grid_tensor(const Shape& shape, uint64_t seed, double offset = 0.0) {
  std::vector<double> v = random_tensor(shape, seed, 0.0, 16.0, DType::f64).to_double();
  for (double& e : v) e = std::floor(e) / 4.0 - 2.0 + offset;
  return Tensor::from_vector(v, shape).to(DType::f32);
}

// {41, 2, 13, 17}: 9061 values per channel, split over blocks in uneven chunks that straddle
// samples; {64, 16, 32, 32}: 65536 per channel over 16 blocks; {8, 32, 1, 1}: H = W = 1.
const Shape kShapes[] = {{2, 3, 5, 7},    {4, 1, 3, 3},     {3, 5, 9, 11},
                         {41, 2, 13, 17}, {64, 16, 32, 32}, {8, 32, 1, 1}};

const char* mode_name(const BatchNormParams& p) {
  static const char* names[] = {"eval", "eval+relu", "train", "train+relu"};
  return names[2 * p.training + p.fuse_relu];
}

}  // namespace

TEST_CASE("parity: batchnorm2d forward and backward") {
  for (const Shape& s : kShapes) {
    const int64_t C = s[1];
    const Tensor x = leaf(grid_tensor(s, 1));
    const Tensor w = leaf(random_tensor({C}, 2, 0.5, 1.5));
    const Tensor b = leaf(random_tensor({C}, 3, -0.5, 0.5));
    const Tensor rm = random_tensor({C}, 4, -0.5, 0.5);
    const Tensor rv = random_tensor({C}, 5, 0.5, 2.0);
    for (bool training : {true, false})
      for (bool relu : {false, true}) {
        const BatchNormParams p{training, 0.1, 1e-5, relu};
        test::parity(
            [p](const auto& in) { return batchnorm2d(in[0], in[1], in[2], in[3], in[4], p); },
            {x, w, b, rm.clone(), rv.clone()},
            std::string("batchnorm2d ") + mode_name(p) + " " + shape_str(s));
      }
  }
}

TEST_CASE("parity: batchnorm2d with a mean far from zero") {
  // Statistics of x = 10 + O(1): a one-pass sum of squares in f32 would lose the variance.
  const Shape s{16, 8, 16, 16};
  const Tensor x = leaf(grid_tensor(s, 6, 10.0));
  const Tensor w = leaf(random_tensor({8}, 7, 0.5, 1.5));
  const Tensor b = leaf(random_tensor({8}, 8, -0.5, 0.5));
  test::parity([](const auto& in) { return batchnorm2d(in[0], in[1], in[2], in[3], in[4]); },
               {x, w, b, random_tensor({8}, 9), random_tensor({8}, 10, 0.5, 2.0)},
               "batchnorm2d train, mean 10");
}

TEST_CASE("parity: batchnorm2d running statistics after two training steps") {
  for (const Shape& s : kShapes) {
    const int64_t C = s[1];
    const Tensor w = random_tensor({C}, 11, 0.5, 1.5);
    const Tensor b = random_tensor({C}, 12, -0.5, 0.5);
    const Tensor rm = random_tensor({C}, 13, -0.5, 0.5);
    const Tensor rv = random_tensor({C}, 14, 0.5, 2.0);
    const Tensor rm_gpu = rm.to(Device::cuda), rv_gpu = rv.to(Device::cuda);
    const Tensor w_gpu = w.to(Device::cuda), b_gpu = b.to(Device::cuda);
    for (uint64_t seed : {15, 16}) {
      const Tensor x = random_tensor(s, seed, -1.0, 3.0);
      batchnorm2d(x, w, b, rm, rv);
      batchnorm2d(x.to(Device::cuda), w_gpu, b_gpu, rm_gpu, rv_gpu);
    }
    test::expect_close(rm_gpu, rm, test::kForward, "running_mean " + shape_str(s));
    test::expect_close(rv_gpu, rv, test::kForward, "running_var " + shape_str(s));
  }
}

TEST_CASE("parity: batchnorm2d on CUDA is deterministic run to run") {
  const Shape s{64, 16, 32, 32};
  const Tensor x = leaf(grid_tensor(s, 17).to(Device::cuda));
  const Tensor w = leaf(random_tensor({16}, 18, 0.5, 1.5, DType::f32, Device::cuda));
  const Tensor b = leaf(random_tensor({16}, 19, -0.5, 0.5, DType::f32, Device::cuda));
  const Tensor rm = random_tensor({16}, 20, -0.5, 0.5, DType::f32, Device::cuda);
  const Tensor rv = random_tensor({16}, 21, 0.5, 2.0, DType::f32, Device::cuda);
  const Tensor seed = random_tensor(s, 22, -1.0, 1.0, DType::f32, Device::cuda);
  std::vector<Tensor> runs;  // y, dx, dweight, dbias of each run
  for (int run = 0; run < 2; ++run) {
    for (const Tensor& t : {x, w, b}) t.set_grad(Tensor());
    const Tensor y = batchnorm2d(x, w, b, rm, rv, {.fuse_relu = true});
    autograd::backward(y, seed);
    runs.insert(runs.end(), {y, x.grad(), w.grad(), b.grad()});
  }
  for (size_t k = 0; k < 4; ++k)
    test::expect_close(runs[4 + k], runs[k], {0, 0}, "run 2 vs run 1, tensor " + std::to_string(k));
}
