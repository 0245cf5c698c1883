// CUDA linear (cuBLAS + bias kernels) against the CPU reference (OpenBLAS): forward and every
// gradient.
#include <doctest/doctest.h>

#include "engine/device.h"
#include "engine/ops/linear.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

// (N, in, out)
const Shape kShapes[] = {{1, 1, 1}, {7, 13, 5}, {33, 64, 17}, {128, 512, 10}, {64, 300, 257}};

// Each output sums `in` products. Measured against f64, the fp32 CPU reference of a 300- or
// 512-long sum is up to 1.3e-5 off, and cuBLAS adds in another order, so past 128 terms the
// forward atol is the gradient policy's 1e-4 instead of 1e-5.
test::Tol forward_tol(int64_t in) {
  return in > 128 ? test::Tol{test::kGrad.atol, test::kForward.rtol} : test::kForward;
}

void check_shape(const Shape& s, uint64_t seed, bool bias, bool input_grad, test::Tol fwd,
                 test::Tol grad, const std::string& tag) {
  const int64_t n = s[0], in = s[1], out = s[2];
  const Tensor x = random_tensor({n, in}, seed);
  std::vector<Tensor> inputs{input_grad ? leaf(x) : x, leaf(random_tensor({out, in}, seed + 1))};
  if (bias) inputs.push_back(leaf(random_tensor({out}, seed + 2)));
  test::parity([](const auto& t) { return linear(t[0], t[1], t.size() > 2 ? t[2] : Tensor()); },
               inputs, cat("linear N=", n, " in=", in, " out=", out, bias ? " + bias" : "", tag), fwd,
               grad);
}

}  // namespace

TEST_CASE("parity: linear forward and gradients") {
  uint64_t seed = 1;
  for (const Shape& s : kShapes)
    for (bool bias : {true, false})
      check_shape(s, seed += 3, bias, true, forward_tol(s[1]), test::kGrad, "");
  check_shape(kShapes[3], 40, true, false, forward_tol(512), test::kGrad, " (input without grad)");
}

TEST_CASE("parity: linear under TF32") {
  test::PrecisionScope tf32(Precision::tf32);
  // TF32 keeps 10 of fp32's 23 mantissa bits. Simulated on the CPU (operands truncated to TF32),
  // the 32- and 64-long sums stay within a quarter of atol 1e-2 + rtol 5e-3 (STYLE's TF32 rtol).
  check_shape({32, 64, 48}, 50, true, true, {1e-2, 5e-3}, {1e-2, 5e-3}, " tf32");
}

TEST_CASE("linear on CUDA: dtype and device checks") {
  const Tensor x = random_tensor({4, 3}, 60, -1.0, 1.0, DType::f32, Device::cuda);
  CHECK_THROWS_WITH_AS(linear(x, random_tensor({5, 3}, 61), Tensor()),
                       doctest::Contains("linear: tensors on different devices (cuda and cpu)"), Error);
  const Tensor x64 = random_tensor({4, 3}, 62, -1.0, 1.0, DType::f64, Device::cuda);
  const Tensor w64 = random_tensor({5, 3}, 63, -1.0, 1.0, DType::f64, Device::cuda);
  CHECK_THROWS_WITH_AS(linear(x64, w64, Tensor()),
                       doctest::Contains("linear: CUDA path takes f32, got f64"), Error);
}
