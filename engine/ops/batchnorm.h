// Batch normalisation over (N, H, W) per channel, with an optional fused ReLU: the layer that
// follows every convolution in ResNet, VGG-BN and MobileNetV2. CPU (f32, f64) and CUDA (f32).
#pragma once
#include "engine/tensor.h"

namespace sieve {

struct BatchNormParams {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  bool fuse_relu = false;
};

// x: (N, C, H, W); weight, bias: (C,) parameters; running_mean, running_var: (C,) buffers, all of
// x's dtype and device.
// Training: normalises with the batch mean and biased batch variance, and updates the running
// stats in place (PyTorch: running = (1 - momentum) * running + momentum * batch, with the
// UNBIASED variance for running_var); the update is not recorded by autograd.
// Eval: normalises with the running stats. fuse_relu applies ReLU to the output in the same
// kernel (and masks the gradient).
Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const Tensor& running_mean, const Tensor& running_var, BatchNormParams p = {});

}  // namespace sieve
