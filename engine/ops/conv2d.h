// 2-d convolution (cross-correlation, as in PyTorch's nn.Conv2d) over NCHW tensors, with
// groups (incl. depthwise). CPU: im2col + GEMM; CUDA: cuDNN.
#pragma once
#include "engine/tensor.h"

namespace sieve {

struct Conv2dParams {
  int stride = 1;
  int padding = 0;
  int groups = 1;
};  // square stride and padding, dilation 1

// x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or an undefined Tensor -> y: (N, K, P, Q)
// with P = (H + 2 padding - R) / stride + 1 and Q likewise.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dParams p = {});

}  // namespace sieve
