// CUDA kernels of engine/ops/batchnorm (f32). Defined in batchnorm.cu. x is (N, C, HW) with
// HW = H * W; per-channel vectors are (C,). Reductions are deterministic: fixed partitions and
// fixed combination order, no atomics.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// Training statistics: mean and invstd = 1 / sqrt(biased var + eps) of each channel (Welford
// per thread, Chan's combination across threads and blocks); updates running_mean and
// running_var (unbiased) in place with the momentum rule.
void batchnorm_batch_stats(const float* x, int64_t N, int64_t C, int64_t HW, double eps,
                           double momentum, float* mean, float* invstd, float* running_mean,
                           float* running_var);
// Eval statistics: mean = running_mean, invstd = 1 / sqrt(running_var + eps).
void batchnorm_running_stats(const float* running_mean, const float* running_var, int64_t C,
                             double eps, float* mean, float* invstd);
// y = (x - mean) * invstd * weight + bias, then max(y, 0) when relu.
void batchnorm_forward(const float* x, const float* mean, const float* invstd, const float* weight,
                       const float* bias, float* y, int64_t N, int64_t C, int64_t HW, bool relu);
// With g = dy, masked to y > 0 when y is not null (fused ReLU), and xhat = (x - mean) * invstd:
// sum_g[c] = sum(g), sum_g_xhat[c] = sum(g * xhat) over the channel.
void batchnorm_backward_reduce(const float* x, const float* y, const float* dy, const float* mean,
                               const float* invstd, int64_t N, int64_t C, int64_t HW, float* sum_g,
                               float* sum_g_xhat);
// Training: dx = weight * invstd * (g - sum_g / M - xhat * sum_g_xhat / M), M = N * HW;
// eval: dx = g * weight * invstd.
void batchnorm_backward_input(const float* x, const float* y, const float* dy, const float* mean,
                              const float* invstd, const float* weight, const float* sum_g,
                              const float* sum_g_xhat, float* dx, int64_t N, int64_t C, int64_t HW,
                              bool training);

}  // namespace sieve::cuda
