// Fully connected layer y = x w^T + b (PyTorch's nn.Linear layout), and the per-channel bias
// add / bias gradient it shares with conv2d.
#pragma once
#include "engine/tensor.h"

namespace sieve {

// x: (N, in), w: (out, in), bias: (out,) or undefined -> y: (N, out) = x w^T + b.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

// Building blocks without autograd; dim 1 of y (N, C, ...) is the channel axis.
void add_channel_bias_(const Tensor& y, const Tensor& bias);  // y[:, c, ...] += bias[c]
Tensor channel_bias_grad(const Tensor& dy);  // (C,): dy summed over every dim but 1

}  // namespace sieve
