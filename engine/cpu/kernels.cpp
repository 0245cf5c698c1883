// Compiled twice: as it stands for any x86-64, and by kernels_avx512.cpp with AVX-512 enabled
// (SIEVE_KERNELS_ISA = avx512); kernels.h's entry points pick the build the CPU can run.
#include <algorithm>
#include <cmath>

#include "engine/cpu/kernels.h"

#ifndef SIEVE_KERNELS_ISA
#define SIEVE_KERNELS_ISA generic
#endif

namespace sieve::cpu::SIEVE_KERNELS_ISA {

namespace {

// Sum over channel c of f(plane, i): one vectorised f32 sum per (n, c) plane, gathered in f64 so
// that large batches lose no precision.
template <class F>
double channel_sum(int64_t n, int64_t c, int64_t channels, int64_t hw, F&& f) {
  double total = 0.0;
  for (int64_t s = 0; s < n; ++s) {
    const int64_t base = (s * channels + c) * hw;
    float part = 0.0f;
#pragma omp simd reduction(+ : part)
    for (int64_t i = 0; i < hw; ++i) part += f(base + i);
    total += part;
  }
  return total;
}

}  // namespace

void batchnorm_forward_fast(const BatchNormForward& a) {
  const double m = static_cast<double>(a.n * a.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < a.c; ++c) {
    const float* x = a.x;
    double mu, istd;
    if (a.training) {
      mu = channel_sum(a.n, c, a.c, a.hw, [x](int64_t i) { return x[i]; }) / m;
      const float muf = static_cast<float>(mu);
      const double var = channel_sum(a.n, c, a.c, a.hw, [x, muf](int64_t i) {
                           const float d = x[i] - muf;
                           return d * d;
                         }) / m;
      istd = 1.0 / std::sqrt(var + a.eps);
      a.running_mean[c] = static_cast<float>((1.0 - a.momentum) * a.running_mean[c] + a.momentum * mu);
      a.running_var[c] = static_cast<float>((1.0 - a.momentum) * a.running_var[c] + a.momentum * var * m / (m - 1.0));
    } else {
      mu = a.running_mean[c];
      istd = 1.0 / std::sqrt(static_cast<double>(a.running_var[c]) + a.eps);
    }
    a.mean[c] = static_cast<float>(mu);
    a.invstd[c] = static_cast<float>(istd);
    // y = x * scale + shift, with the affine folded into two constants.
    const float scale = static_cast<float>(a.weight[c] * istd);
    const float shift = static_cast<float>(a.bias[c] - mu * a.weight[c] * istd);
    for (int64_t s = 0; s < a.n; ++s) {
      const int64_t base = (s * a.c + c) * a.hw;
      const float* xp = x + base;
      float* yp = a.y + base;
      if (a.relu) {
#pragma omp simd
        for (int64_t i = 0; i < a.hw; ++i) yp[i] = std::max(xp[i] * scale + shift, 0.0f);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < a.hw; ++i) yp[i] = xp[i] * scale + shift;
      }
    }
  }
}

namespace {

// With a fused ReLU the gradient reaching the normalisation is dy where y > 0; a template
// parameter keeps that test out of the vectorised loops when there is no ReLU.
template <bool Relu>
void batchnorm_backward_channels(const BatchNormBackward& a) {
  const double m = static_cast<double>(a.n * a.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < a.c; ++c) {
    const float* x = a.x;
    const float* y = a.y;
    const float* dy = a.dy;
    const float mu = a.mean[c];
    const double istd = a.invstd[c];
    auto g = [y, dy](int64_t i) {
      const float d = dy[i];  // loaded unconditionally, so the select vectorises
      if constexpr (Relu) return y[i] > 0.0f ? d : 0.0f;
      else return d;
    };
    const double sum_g = channel_sum(a.n, c, a.c, a.hw, g);
    const double sum_g_xhat = istd * channel_sum(a.n, c, a.c, a.hw, [&](int64_t i) { return g(i) * (x[i] - mu); });
    a.dweight[c] = static_cast<float>(sum_g_xhat);
    a.dbias[c] = static_cast<float>(sum_g);
    if (!a.dx) continue;
    // dx = w istd (g - sum_g / M - xhat sum_g_xhat / M) in training, w istd g in eval.
    const double w_istd = a.weight[c] * istd;
    const float k_g = static_cast<float>(w_istd);
    const float k_0 = a.training ? static_cast<float>(w_istd * sum_g / m) : 0.0f;
    const float k_x = a.training ? static_cast<float>(w_istd * istd * sum_g_xhat / m) : 0.0f;
    for (int64_t s = 0; s < a.n; ++s) {
      const int64_t base = (s * a.c + c) * a.hw;
      float* dxp = a.dx + base;
#pragma omp simd
      for (int64_t i = 0; i < a.hw; ++i) dxp[i] = k_g * g(base + i) - k_0 - k_x * (x[base + i] - mu);
    }
  }
}

}  // namespace

void batchnorm_backward_fast(const BatchNormBackward& a) {
  if (a.y)
    batchnorm_backward_channels<true>(a);
  else
    batchnorm_backward_channels<false>(a);
}

}  // namespace sieve::cpu::SIEVE_KERNELS_ISA

#if !defined(SIEVE_KERNELS_AVX512_BUILD)
namespace sieve::cpu {

namespace {
bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
}
}  // namespace

void batchnorm_forward_fast(const BatchNormForward& a) {
  has_avx512() ? avx512::batchnorm_forward_fast(a) : generic::batchnorm_forward_fast(a);
}
void batchnorm_backward_fast(const BatchNormBackward& a) {
  has_avx512() ? avx512::batchnorm_backward_fast(a) : generic::batchnorm_backward_fast(a);
}

}  // namespace sieve::cpu
#endif
