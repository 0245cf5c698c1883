// Compiled twice: as it stands for any x86-64, and by kernels_avx512.cpp with AVX-512 enabled
// (SIEVE_KERNELS_ISA = avx512); kernels.h's entry points pick the build the CPU can run.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <omp.h>
#ifdef SIEVE_KERNELS_AVX512_BUILD
#include <immintrin.h>
#endif

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

// One channel's statistics, shared by the plain and the blocked kernels: in training from its
// batch mean and biased variance (over m values), with PyTorch's update of the running stats
// (unbiased variance); in eval from the running stats (mu and var unused). Writes mean / invstd
// and returns the affine folded into y = x * scale + shift.
struct ChannelAffine {
  float scale, shift;
};
ChannelAffine channel_affine(const BatchNormForward& a, int64_t c, double mu, double var, double m) {
  double istd;
  if (a.training) {
    istd = 1.0 / std::sqrt(var + a.eps);
    a.running_mean[c] = static_cast<float>((1.0 - a.momentum) * a.running_mean[c] + a.momentum * mu);
    a.running_var[c] = static_cast<float>((1.0 - a.momentum) * a.running_var[c] + a.momentum * var * m / (m - 1.0));
  } else {
    mu = a.running_mean[c];
    istd = 1.0 / std::sqrt(static_cast<double>(a.running_var[c]) + a.eps);
  }
  a.mean[c] = static_cast<float>(mu);
  a.invstd[c] = static_cast<float>(istd);
  return {static_cast<float>(a.weight[c] * istd), static_cast<float>(a.bias[c] - mu * a.weight[c] * istd)};
}

// One channel's backward from its sums sum(g) and sum(g * (x - mu)) over m values: writes
// dweight = sum(g * xhat) and dbias = sum(g), and returns the constants of
// dx = k_g g - k_0 - k_x (x - mu), i.e. w istd (g - sum_g / M - xhat sum_g_xhat / M) in training,
// w istd g in eval.
struct ChannelGrad {
  float k_g, k_0, k_x;
};
ChannelGrad channel_grad(const BatchNormBackward& a, int64_t c, double sum_g, double sum_gx, double m) {
  const double istd = a.invstd[c];
  const double sum_g_xhat = istd * sum_gx;
  a.dweight[c] = static_cast<float>(sum_g_xhat);
  a.dbias[c] = static_cast<float>(sum_g);
  const double w_istd = a.weight[c] * istd;
  return {static_cast<float>(w_istd), a.training ? static_cast<float>(w_istd * sum_g / m) : 0.0f,
          a.training ? static_cast<float>(w_istd * istd * sum_g_xhat / m) : 0.0f};
}

// Which gradient reaches the normalisation from a fused activation, as relu / relu6 mask it: all
// of dy (none), dy where y > 0 (ReLU), dy where 0 < y < cap (ReLU6). A template parameter, so the
// vectorised loops carry no test of it; both selects load dy unconditionally, so they vectorise.
enum class Mask { none, relu, capped };

template <Mask M>
float masked(float y, float dy, float cap) {
  if constexpr (M == Mask::none) return dy;
  const float low = y > 0.0f ? dy : 0.0f;
  if constexpr (M == Mask::relu) return low;
  else return y < cap ? low : 0.0f;
}

Mask mask_of(const BatchNormBackward& a) {
  return !a.y && !a.scale ? Mask::none : std::isinf(a.relu_cap) ? Mask::relu : Mask::capped;
}

// The fused activation's forward, relu / relu6's selects: NaN stays NaN, +inf passes ReLU.
inline float clamped(float v, float cap) { return std::min(std::max(v, 0.0f), cap); }

// The normalisation folded into one affine, in the forward pass and where a backward recomputes
// the ReLU's mask from x: one function, so both round alike (masked() of it selects as of y).
inline float affine(float x, float scale, float shift) { return x * scale + shift; }

// The blocked layout (nChw16c): plane (s, b) holds hw pixels of the kLanes channels b * kLanes
// ... b * kLanes + kLanes - 1, interleaved, so one vector holds one pixel of kLanes channels and
// the per-channel loops need no horizontal sums.
constexpr int64_t kLanes = 16;

// sum0[ch] (and sum1[ch]) = the sum over the samples and pixels of channel ch of f0(k, ch) (and
// f1(k, ch)), k the storage offset, in one pass over the data: f32 sums of kChunk pixels per lane
// (as short as the plain kernel's vectorised partial sums), gathered in f64 per thread and then
// over the threads in their order (a static schedule: the same sums every run). Threaded over
// samples as well as blocks: ResNet-20's widest layers have one block. With sum1 null, f1 is not
// called.
constexpr int64_t kChunk = 32;

template <class F0, class F1>
void blocked_channel_sums(int64_t n, int64_t c, int64_t hw, F0&& f0, double* sum0, F1&& f1, double* sum1) {
  const int64_t blocks = c / kLanes;
  const int threads = omp_get_max_threads();
  std::vector<double> parts(static_cast<size_t>(threads * 2 * c), 0.0);
  const bool two = sum1 != nullptr;
#pragma omp parallel num_threads(threads)
  {
    double* mine = parts.data() + static_cast<size_t>(omp_get_thread_num() * 2 * c);
#pragma omp for collapse(2) schedule(static)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t base = (s * blocks + b) * hw * kLanes;
        for (int64_t i0 = 0; i0 < hw; i0 += kChunk) {
          float acc0[kLanes] = {}, acc1[kLanes] = {};
          const int64_t i1 = std::min(hw, i0 + kChunk);
          if (two) {
            for (int64_t i = i0; i < i1; ++i) {
#pragma omp simd
              for (int64_t l = 0; l < kLanes; ++l) {
                acc0[l] += f0(base + i * kLanes + l, b * kLanes + l);
                acc1[l] += f1(base + i * kLanes + l, b * kLanes + l);
              }
            }
          } else {
            for (int64_t i = i0; i < i1; ++i) {
#pragma omp simd
              for (int64_t l = 0; l < kLanes; ++l) acc0[l] += f0(base + i * kLanes + l, b * kLanes + l);
            }
          }
          for (int64_t l = 0; l < kLanes; ++l) mine[b * kLanes + l] += acc0[l], mine[c + b * kLanes + l] += acc1[l];
        }
      }
  }
  for (int j = 0; j < (two ? 2 : 1); ++j)
    for (int64_t ch = 0; ch < c; ++ch) {
      double total = 0.0;
      for (int t = 0; t < threads; ++t) total += parts[static_cast<size_t>((t * 2 + j) * c + ch)];
      (j == 0 ? sum0 : sum1)[ch] = total;
    }
}

template <class F>
void blocked_channel_sums(int64_t n, int64_t c, int64_t hw, F&& f, double* sum) {
  blocked_channel_sums(n, c, hw, f, sum, f, nullptr);
}

// pixel(k0, ch0) for every pixel of a blocked tensor: k0 the storage offset of its kLanes values,
// ch0 the channel of the first; threaded over samples and blocks.
template <class Pixel>
void blocked_for_each_pixel(int64_t n, int64_t c, int64_t hw, Pixel&& pixel) {
  const int64_t blocks = c / kLanes;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t s = 0; s < n; ++s)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t base = (s * blocks + b) * hw * kLanes;
      for (int64_t i = 0; i < hw; ++i) pixel(base + i * kLanes, b * kLanes);
    }
}

// body(k, ch) for every element k of a blocked tensor (ch its channel), vectorised over the lanes
// of a pixel.
template <class Body>
void blocked_for_each(int64_t n, int64_t c, int64_t hw, Body&& body) {
  blocked_for_each_pixel(n, c, hw, [&body](int64_t k0, int64_t ch0) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) body(k0 + l, ch0 + l);
  });
}

// out[k] = f(k, ch) over a blocked tensor.
template <class F>
void blocked_map(int64_t n, int64_t c, int64_t hw, float* out, F&& f) {
  blocked_for_each(n, c, hw, [out, &f](int64_t k, int64_t ch) { out[k] = f(k, ch); });
}

// out[k] = f(k, ch) and out2[k] = f2(k, ch) in one pass.
template <class F, class F2>
void blocked_map2(int64_t n, int64_t c, int64_t hw, float* out, F&& f, float* out2, F2&& f2) {
  blocked_for_each(n, c, hw, [out, out2, &f, &f2](int64_t k, int64_t ch) {
    out[k] = f(k, ch);
    out2[k] = f2(k, ch);
  });
}

// The batch mean and biased variance from one pass over the data: the sums of d = x - K and of d^2,
// K a shift per channel (the mean of the first sample's plane) close enough to the mean that
// mean(d^2) - mean(d)^2 cancels no more digits than the two-pass form's rounding of the mean.
struct ShiftedSums {
  double shift, sum, sum_sq;
  double mean(double m) const { return shift + sum / m; }
  double var(double m) const { return std::max(sum_sq / m - (sum / m) * (sum / m), 0.0); }
};

// kLanes values to bf16 (round_to_bf16): one instruction where the build has AVX512-BF16 (and
// the caller made sure the CPU has it), else its rounding spelled out.
inline void pixel_to_bf16(const float* v, uint16_t* out) {
#ifdef SIEVE_KERNELS_AVX512_BUILD
  static_assert(kLanes == 16);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v)));
#else
  for (int64_t l = 0; l < kLanes; ++l) {
    uint32_t u;
    std::memcpy(&u, v + l, sizeof u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;  // denormals as zero
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    out[l] = static_cast<uint16_t>(nan ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
#endif
}

// out[k] = f(k, ch) rounded to bf16 (pixel_to_bf16) and, where out2 is given, out2[k] = f2(k, ch)
// in f32, over a blocked tensor.
template <class F, class F2>
void blocked_map_bf16(int64_t n, int64_t c, int64_t hw, uint16_t* out, F&& f, float* out2, F2&& f2) {
  blocked_for_each_pixel(n, c, hw, [out, out2, &f, &f2](int64_t k0, int64_t ch0) {
    alignas(64) float v[kLanes];
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) v[l] = f(k0 + l, ch0 + l);
    pixel_to_bf16(v, out + k0);
    if (out2) {
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) out2[k0 + l] = f2(k0 + l, ch0 + l);
    }
  });
}

// The channel sums of all blocks first (one pass), then channel_affine per channel, then one pass
// over y.
void blocked_forward(const BatchNormForward& a) {
  const double m = static_cast<double>(a.n * a.hw);
  std::vector<double> mu(a.c), var(a.c);
  std::vector<float> scale(a.c), shift(a.c);
  const float* x = a.x;
  if (a.training) {
    std::vector<float> k(a.c);
    for (int64_t ch = 0; ch < a.c; ++ch) {
      const float* plane = x + (ch / kLanes) * a.hw * kLanes + ch % kLanes;
      double total = 0.0;
      for (int64_t i = 0; i < a.hw; ++i) total += plane[i * kLanes];
      k[ch] = static_cast<float>(total / static_cast<double>(a.hw));
    }
    const float* kp = k.data();
    std::vector<double> sum(a.c), sum_sq(a.c);
    blocked_channel_sums(a.n, a.c, a.hw, [x, kp](int64_t i, int64_t ch) { return x[i] - kp[ch]; }, sum.data(),
                         [x, kp](int64_t i, int64_t ch) {
                           const float d = x[i] - kp[ch];
                           return d * d;
                         }, sum_sq.data());
    for (int64_t ch = 0; ch < a.c; ++ch) {
      const ShiftedSums st{kp[ch], sum[ch], sum_sq[ch]};
      mu[ch] = st.mean(m), var[ch] = st.var(m);
    }
  }
  for (int64_t ch = 0; ch < a.c; ++ch) {
    const ChannelAffine f = channel_affine(a, ch, mu[ch], var[ch], m);
    scale[ch] = f.scale, shift[ch] = f.shift;
  }
  const float *sc = scale.data(), *sh = shift.data(), *r = a.residual;
  const float cap = a.relu_cap;
  if (r && a.relu)
    blocked_map(a.n, a.c, a.hw, a.y,
                [x, r, sc, sh, cap](int64_t k, int64_t ch) { return clamped(x[k] * sc[ch] + sh[ch] + r[k], cap); });
  else if (r)
    blocked_map(a.n, a.c, a.hw, a.y, [x, r, sc, sh](int64_t k, int64_t ch) { return x[k] * sc[ch] + sh[ch] + r[k]; });
  else if (a.relu)
    blocked_map(a.n, a.c, a.hw, a.y,
                [x, sc, sh, cap](int64_t k, int64_t ch) { return clamped(affine(x[k], sc[ch], sh[ch]), cap); });
  else
    blocked_map(a.n, a.c, a.hw, a.y, [x, sc, sh](int64_t k, int64_t ch) { return affine(x[k], sc[ch], sh[ch]); });
  if (a.scale) std::copy(scale.begin(), scale.end(), a.scale), std::copy(shift.begin(), shift.end(), a.shift);
}

// FromX: the mask from the forward's affine of x (BatchNormBackward::scale), y not read.
template <Mask M, bool FromX>
void blocked_backward(const BatchNormBackward& a) {
  const double m = static_cast<double>(a.n * a.hw);
  const float *x = a.x, *y = a.y, *dy = a.dy, *mu = a.mean, *sc = a.scale, *sh = a.shift;
  const float cap = a.relu_cap;
  auto g = [x, y, dy, sc, sh, cap](int64_t k, int64_t ch) {
    if constexpr (M == Mask::none) return dy[k];
    else if constexpr (FromX) return masked<M>(affine(x[k], sc[ch], sh[ch]), dy[k], cap);
    else return masked<M>(y[k], dy[k], cap);
  };
  std::vector<double> sum_g(a.c), sum_gx(a.c);
  // Both sums in one pass over x, dy (and y).
  blocked_channel_sums(a.n, a.c, a.hw, [&g](int64_t k, int64_t ch) { return g(k, ch); }, sum_g.data(),
                       [&g, x, mu](int64_t k, int64_t ch) { return g(k, ch) * (x[k] - mu[ch]); }, sum_gx.data());
  std::vector<float> k_g(a.c), k_0(a.c), k_x(a.c);
  for (int64_t ch = 0; ch < a.c; ++ch) {
    const ChannelGrad k = channel_grad(a, ch, sum_g[ch], sum_gx[ch], m);
    k_g[ch] = k.k_g, k_0[ch] = k.k_0, k_x[ch] = k.k_x;
  }
  const float *kg = k_g.data(), *k0 = k_0.data(), *kx = k_x.data();
  auto dx = [&g, x, mu, kg, k0, kx](int64_t k, int64_t ch) {
    return kg[ch] * g(k, ch) - k0[ch] - kx[ch] * (x[k] - mu[ch]);
  };
  if (a.dx_bf16)
    blocked_map_bf16(a.n, a.c, a.hw, a.dx_bf16, dx, a.dresidual, g);
  else if (a.dx && a.dresidual)
    blocked_map2(a.n, a.c, a.hw, a.dx, dx, a.dresidual, g);
  else if (a.dx)
    blocked_map(a.n, a.c, a.hw, a.dx, dx);
  else if (a.dresidual)
    blocked_map(a.n, a.c, a.hw, a.dresidual, g);
}

}  // namespace

void batchnorm_forward_fast(const BatchNormForward& a) {
  if (a.blocked) return blocked_forward(a);
  const double m = static_cast<double>(a.n * a.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < a.c; ++c) {
    const float* x = a.x;
    double mu = 0, var = 0;
    if (a.training) {
      const float k = static_cast<float>(channel_sum(1, c, a.c, a.hw, [x](int64_t i) { return x[i]; }) /
                                         static_cast<double>(a.hw));
      ShiftedSums st{k, 0.0, 0.0};
      for (int64_t s = 0; s < a.n; ++s) {
        const float* xp = x + (s * a.c + c) * a.hw;
        float part = 0.0f, part_sq = 0.0f;
#pragma omp simd reduction(+ : part, part_sq)
        for (int64_t i = 0; i < a.hw; ++i) {
          const float d = xp[i] - k;
          part += d;
          part_sq += d * d;
        }
        st.sum += part, st.sum_sq += part_sq;
      }
      mu = st.mean(m), var = st.var(m);
    }
    const ChannelAffine f = channel_affine(a, c, mu, var, m);
    const float scale = f.scale, shift = f.shift;  // plain names: the loops below are OpenMP regions
    for (int64_t s = 0; s < a.n; ++s) {
      const int64_t base = (s * a.c + c) * a.hw;
      const float* xp = x + base;
      float* yp = a.y + base;
      const float cap = a.relu_cap;
      if (a.residual) {
        const float* rp = a.residual + base;
        if (a.relu) {
#pragma omp simd
          for (int64_t i = 0; i < a.hw; ++i) yp[i] = clamped(xp[i] * scale + shift + rp[i], cap);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < a.hw; ++i) yp[i] = xp[i] * scale + shift + rp[i];
        }
      } else if (a.relu) {
#pragma omp simd
        for (int64_t i = 0; i < a.hw; ++i) yp[i] = clamped(affine(xp[i], scale, shift), cap);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < a.hw; ++i) yp[i] = affine(xp[i], scale, shift);
      }
    }
    if (a.scale) a.scale[c] = scale, a.shift[c] = shift;
  }
}

namespace {

// With a fused activation the gradient reaching the normalisation is masked (Mask), FromX as in
// blocked_backward.
template <Mask M, bool FromX>
void batchnorm_backward_channels(const BatchNormBackward& a) {
  const double m = static_cast<double>(a.n * a.hw);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < a.c; ++c) {
    const float* x = a.x;
    const float* y = a.y;
    const float* dy = a.dy;
    const float mu = a.mean[c];
    const float cap = a.relu_cap;
    const float sc = FromX ? a.scale[c] : 0.0f, sh = FromX ? a.shift[c] : 0.0f;
    auto g = [x, y, dy, sc, sh, cap](int64_t i) {
      if constexpr (M == Mask::none) return dy[i];
      else if constexpr (FromX) return masked<M>(affine(x[i], sc, sh), dy[i], cap);
      else return masked<M>(y[i], dy[i], cap);
    };
    const double sum_g = channel_sum(a.n, c, a.c, a.hw, g);
    const double sum_gx = channel_sum(a.n, c, a.c, a.hw, [&](int64_t i) { return g(i) * (x[i] - mu); });
    const ChannelGrad k = channel_grad(a, c, sum_g, sum_gx, m);
    const float k_g = k.k_g, k_0 = k.k_0, k_x = k.k_x;  // plain names: the loop below is an OpenMP region
    for (int64_t s = 0; s < a.n; ++s) {
      const int64_t base = (s * a.c + c) * a.hw;
      if (a.dresidual) {
        float* drp = a.dresidual + base;
#pragma omp simd
        for (int64_t i = 0; i < a.hw; ++i) drp[i] = g(base + i);
      }
      if (!a.dx) continue;
      float* dxp = a.dx + base;
#pragma omp simd
      for (int64_t i = 0; i < a.hw; ++i) dxp[i] = k_g * g(base + i) - k_0 - k_x * (x[base + i] - mu);
    }
  }
}

}  // namespace

namespace {
template <Mask M, bool FromX>
void backward_in_layout(const BatchNormBackward& a) {
  a.blocked ? blocked_backward<M, FromX>(a) : batchnorm_backward_channels<M, FromX>(a);
}

template <Mask M>
void backward_masked(const BatchNormBackward& a) {
  a.scale ? backward_in_layout<M, true>(a) : backward_in_layout<M, false>(a);
}
}  // namespace

void round_to_bf16(const float* in, uint16_t* out, int64_t n) {
  const int64_t whole = n / kLanes * kLanes;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t k = 0; k < whole; k += kLanes) pixel_to_bf16(in + k, out + k);
  if (whole == n) return;
  alignas(64) float v[kLanes] = {};
  uint16_t r[kLanes];
  std::copy(in + whole, in + n, v);
  pixel_to_bf16(v, r);
  std::copy(r, r + (n - whole), out + whole);
}

void batchnorm_backward_fast(const BatchNormBackward& a) {
  switch (mask_of(a)) {
    case Mask::none: return backward_in_layout<Mask::none, false>(a);
    case Mask::relu: return backward_masked<Mask::relu>(a);
    case Mask::capped: return backward_masked<Mask::capped>(a);
  }
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
// The avx512 build rounds to bf16 with AVX512-BF16's own instruction (pixel_to_bf16): it runs
// that rounding only where the CPU has it, the generic build's spelling of it elsewhere.
bool has_avx512_bf16() {
  static const bool yes = has_avx512() && __builtin_cpu_supports("avx512bf16");
  return yes;
}
}  // namespace

void batchnorm_forward_fast(const BatchNormForward& a) {
  has_avx512() ? avx512::batchnorm_forward_fast(a) : generic::batchnorm_forward_fast(a);
}
void batchnorm_backward_fast(const BatchNormBackward& a) {
  const bool avx512 = a.dx_bf16 ? has_avx512_bf16() : has_avx512();
  avx512 ? avx512::batchnorm_backward_fast(a) : generic::batchnorm_backward_fast(a);
}
void round_to_bf16(const float* in, uint16_t* out, int64_t n) {
  has_avx512_bf16() ? avx512::round_to_bf16(in, out, n) : generic::round_to_bf16(in, out, n);
}

}  // namespace sieve::cpu
#endif
