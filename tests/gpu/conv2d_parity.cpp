// CUDA conv2d (cuDNN) against the CPU reference (im2col + OpenBLAS): forward and every gradient.
#include <doctest/doctest.h>

#include "engine/device.h"
#include "engine/ops/conv2d.h"
#include "tests/common/check.h"
#include "tests/common/conv_configs.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

using Config = test::ConvConfig;
using test::label;

// Layers of the real models, beside the unit tests' small shapes (test::kSmallConvConfigs).
const Config kLayerConfigs[] = {
    {"stem 3->16", {16, 3, 32, 32}, {16, 3, 3, 3}, {1, 1, 1}, false},
    {"3x3 stride 2 on 15x15", {8, 16, 15, 15}, {32, 16, 3, 3}, {2, 1, 1}, true},
    {"3x3 64->64", {8, 64, 16, 16}, {64, 64, 3, 3}, {1, 1, 1}, false},
    {"1x1 shortcut stride 2", {8, 32, 16, 16}, {64, 32, 1, 1}, {2, 0, 1}, false},
    {"1x1 expand", {8, 64, 8, 8}, {128, 64, 1, 1}, {1, 0, 1}, false},
    {"depthwise 32 stride 2", {4, 32, 16, 16}, {32, 1, 3, 3}, {2, 1, 32}, true},
    {"depthwise 96 on 9x9", {4, 96, 9, 9}, {96, 1, 3, 3}, {1, 1, 96}, false},
    {"groups 4 on 11x13", {4, 32, 11, 13}, {64, 8, 3, 3}, {1, 1, 4}, true},
    // MobileNetV2's depthwise layers at their channel counts and sizes (CIFAR, batch 2).
    {"depthwise 144 stride 2 on 16x16", {2, 144, 16, 16}, {144, 1, 3, 3}, {2, 1, 144}, false},
    {"depthwise 192 on 8x8", {2, 192, 8, 8}, {192, 1, 3, 3}, {1, 1, 192}, false},
    {"depthwise 384 on 4x4", {2, 384, 4, 4}, {384, 1, 3, 3}, {1, 1, 384}, false},
    {"depthwise 576 stride 2 on 4x4", {2, 576, 4, 4}, {576, 1, 3, 3}, {2, 1, 576}, false},
    {"depthwise 960 on 2x2", {2, 960, 2, 2}, {960, 1, 3, 3}, {1, 1, 960}, false},
};

// Each output sums C/groups * R * S products. Measured against f64, the fp32 CPU reference of a
// 144-long sum is already up to 6e-6 off, and of a 576-long one 2e-5 off, and cuDNN adds in
// other orders (implicit GEMM, Winograd, FFT), so the two may differ by the sum of both errors:
// past 128 terms the forward atol is the gradient policy's 1e-4 instead of 1e-5.
test::Tol forward_tol(const Config& c) {
  const int64_t terms = c.w[1] * c.w[2] * c.w[3];
  return terms > 128 ? test::Tol{test::kGrad.atol, test::kForward.rtol} : test::kForward;
}


void check_config(const Config& c, uint64_t seed, bool input_grad, test::Tol fwd, test::Tol grad,
                  const std::string& tag) {
  const Tensor x = random_tensor(c.x, seed);
  std::vector<Tensor> in{input_grad ? leaf(x) : x, leaf(random_tensor(c.w, seed + 1))};
  if (c.bias) in.push_back(leaf(random_tensor({c.w[0]}, seed + 2)));
  const Conv2dParams p = c.p;
  test::parity([p](const auto& t) { return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), p); },
               in, label(c) + tag, fwd, grad);
}

}  // namespace

TEST_CASE("parity: conv2d forward and gradients") {
  uint64_t seed = 1;
  for (const Config& c : test::kSmallConvConfigs) check_config(c, seed += 3, true, forward_tol(c), test::kGrad, "");
  for (const Config& c : kLayerConfigs) check_config(c, seed += 3, true, forward_tol(c), test::kGrad, "");
}

TEST_CASE("parity: conv2d of an input without grad (first layer) runs backward-filter only") {
  for (const Config& c : {kLayerConfigs[0], kLayerConfigs[1]})
    check_config(c, 50, false, forward_tol(c), test::kGrad, " (input without grad)");
}

TEST_CASE("parity: conv2d plans are cached per shape and precision") {
  const Config& c = kLayerConfigs[1];  // 144-long reductions
  check_config(c, 60, true, forward_tol(c), test::kGrad, " fp32");
  check_config(c, 61, true, forward_tol(c), test::kGrad, " fp32 again (cached plan)");
  {
    // TF32 keeps 10 of fp32's 23 mantissa bits. Simulated on the CPU (operands truncated to
    // TF32), the outputs (144-long sums) reach 36% of atol 1e-2 + rtol 5e-3 (STYLE's TF32
    // rtol), the weight gradient (512-long sums over the batch) 52%: gradients get atol 2e-2.
    test::PrecisionScope tf32(Precision::tf32);
    check_config(c, 62, true, {1e-2, 5e-3}, {2e-2, 5e-3}, " tf32");
  }
  // Back at fp32 the fp32 plan (FMA math) must be used again, not the TF32 one.
  check_config(c, 63, true, forward_tol(c), test::kGrad, " fp32 after tf32");
}

TEST_CASE("conv2d on CUDA: dtype and device checks") {
  const Tensor x = random_tensor({1, 2, 5, 5}, 70, -1.0, 1.0, DType::f32, Device::cuda);
  const Tensor w = random_tensor({3, 2, 3, 3}, 71);
  CHECK_THROWS_WITH_AS(conv2d(x, w, Tensor()),
                       doctest::Contains("conv2d: tensors on different devices (cuda and cpu)"), Error);
  const Tensor x64 = random_tensor({1, 2, 5, 5}, 72, -1.0, 1.0, DType::f64, Device::cuda);
  const Tensor w64 = random_tensor({3, 2, 3, 3}, 73, -1.0, 1.0, DType::f64, Device::cuda);
  CHECK_THROWS_WITH_AS(conv2d(x64, w64, Tensor()),
                       doctest::Contains("conv2d: CUDA path takes f32, got f64"), Error);
}
