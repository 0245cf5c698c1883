// Batch normalisation over (N, H, W) per channel, with an optional fused ReLU: the layer that
// follows every convolution in ResNet, VGG-BN and MobileNetV2. CPU (f32, f64) and CUDA (f32).
#pragma once
#include <limits>

#include "engine/tensor.h"

namespace sieve {

struct BatchNormParams {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  bool fuse_relu = false;
  // With fuse_relu, the output is clamped to [0, relu_cap]: +inf is ReLU, 6 is MobileNetV2's ReLU6.
  double relu_cap = std::numeric_limits<double>::infinity();
};

// x: (N, C, H, W); weight, bias: (C,) parameters; running_mean, running_var: (C,) buffers, all of
// x's dtype and device.
// Training: normalises with the batch mean and biased batch variance, and updates the running
// stats in place (PyTorch: running = (1 - momentum) * running + momentum * batch, with the
// UNBIASED variance for running_var); the update is not recorded by autograd.
// Eval: normalises with the running stats. fuse_relu applies ReLU (or ReLU6, relu_cap) to the
// output in the same kernel and masks the gradient as relu / relu6 do: it flows where
// 0 < y < relu_cap (0 < y for ReLU). On CUDA a capped ReLU runs as batch norm, then relu6's kernel.
// residual (optional, x's shape, dtype and device): added to the normalised x before the
// activation, y = act(bn(x) + residual), the residual join of a ResNet block in the same pass (its
// gradient is the activation's masked dy). On CUDA it runs as batch norm, then add / add_relu.
Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const Tensor& running_mean, const Tensor& running_var, BatchNormParams p = {},
                   const Tensor& residual = Tensor());

}  // namespace sieve
