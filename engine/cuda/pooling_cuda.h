// CUDA kernels of engine/ops/pooling (f32). Defined in pooling.cu. x is viewed as (planes, H, W)
// with planes = N * C and the pooled output as (planes, Ho, Wo); the window is kernel x kernel,
// moved by stride, over the input padded by padding on every side.
#pragma once
#include <cstdint>

namespace sieve::cuda {

void max_pool2d_forward(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t Ho,
                        int64_t Wo, int kernel, int stride, int padding);
// Recomputes each window's argmax from x; one thread per input element gathers dy from the
// windows whose argmax it is.
void max_pool2d_backward(const float* x, const float* dy, float* dx, int64_t planes, int64_t H,
                         int64_t W, int64_t Ho, int64_t Wo, int kernel, int stride, int padding);
void avg_pool2d_forward(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t Ho,
                        int64_t Wo, int kernel, int stride, int padding);
void avg_pool2d_backward(const float* dy, float* dx, int64_t planes, int64_t H, int64_t W,
                         int64_t Ho, int64_t Wo, int kernel, int stride, int padding);
// y[p] = mean of x's plane p (HW elements); dx[p, i] = dy[p] / HW.
void global_avg_pool_forward(const float* x, float* y, int64_t planes, int64_t HW);
void global_avg_pool_backward(const float* dy, float* dx, int64_t planes, int64_t HW);

}  // namespace sieve::cuda
