// 2-d pooling over (N, C, H, W): max and average with a square window, and the global average
// that ends every classifier's feature extractor. CPU (f32, f64) and CUDA (f32).
#pragma once
#include "engine/tensor.h"

namespace sieve {

// Output (N, C, Ho, Wo) with Ho = (H + 2 * padding - kernel) / stride + 1 (floor), likewise Wo.
// padding may be at most kernel / 2, so every window holds at least one input element.

// Max pooling: padding counts as -inf. A window's gradient goes to its first maximum in
// row-major order, and a NaN in a window propagates (both as in PyTorch).
Tensor max_pool2d(const Tensor& x, int kernel, int stride, int padding = 0);
// Average pooling: count_include_pad = true (PyTorch default), so every divisor is kernel^2.
Tensor avg_pool2d(const Tensor& x, int kernel, int stride, int padding = 0);
Tensor global_avg_pool(const Tensor& x);  // (N, C, H, W) -> (N, C)

}  // namespace sieve
