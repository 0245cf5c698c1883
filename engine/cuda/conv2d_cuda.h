// CUDA side of engine/ops/conv2d (f32, NCHW): convolutions through cuDNN, defined in cudnn.cu.
// Bias add and bias gradient are the per-channel kernels of linear_cuda.h.
#pragma once

namespace sieve::cuda {

// x: (n, c, h, w), weight: (k, c / groups, r, s), y: (n, k, p, q); square stride and padding,
// dilation 1. p and q are the caller's output size, checked against cuDNN's.
struct ConvShape {
  int n, c, h, w, k, r, s, p, q, stride, padding, groups;
};

// Each writes its output fresh (beta = 0).
void conv2d_forward(const ConvShape& shape, const float* x, const float* weight, float* y);
void conv2d_backward_data(const ConvShape& shape, const float* weight, const float* dy, float* dx);
void conv2d_backward_filter(const ConvShape& shape, const float* x, const float* dy, float* dweight);

}  // namespace sieve::cuda
