// The CPU fast path's own kernels (f32): batch normalisation (+ ReLU) forward and backward, vectorised
// and threaded over channels, with per-plane f32 sums gathered in f64. Each op's readable
// reference (engine/ops/*.cpp, f32 and f64) stays the oracle; tests compare the two op by op.
#pragma once
#include <cstdint>

namespace sieve::cpu {

// x, y: (N, C, HW), or blocked (nChw16c, C a multiple of 16: see Tensor::blocked). Training:
// batch statistics into mean / invstd (C,) and the running stats updated as PyTorch does
// (unbiased running variance); eval: normalises with the running stats. relu: y clamped to
// [0, relu_cap] (+inf: ReLU; 6: ReLU6). residual (x's layout, or null) is added before it.
// scale, shift (C,), or null: where given, the affine y = x * scale + shift the kernel applied,
// so that a backward can recompute the ReLU's mask from x instead of reading y.
struct BatchNormForward {
  const float *x, *residual, *weight, *bias;
  float *running_mean, *running_var;
  float *mean, *invstd, *y, *scale, *shift;
  int64_t n, c, hw;
  bool blocked, training, relu;
  float relu_cap;
  double momentum, eps;
};
void batchnorm_forward_fast(const BatchNormForward& a);

// y is the forward output, read only with a fused ReLU (y null without one): the gradient flows
// where 0 < y < relu_cap (0 < y when relu_cap is +inf). dx may be null. dweight = sum(g * xhat),
// dbias = sum(g) per channel. dresidual (or null): the gradient of a residual added in the forward
// pass, g itself, written in the pass that writes dx. scale, shift (or null): the forward's
// affine (BatchNormForward::scale) of a fused ReLU without a residual; given, the mask is
// recomputed from x (the same bits as y's: 0 < y < cap exactly where 0 < x * scale + shift < cap)
// and y is not read, one stream less over memory in both passes.
// dx_bf16 (or null; blocked only): dx rounded to bf16 (round_to_bf16), written instead of dx.
struct BatchNormBackward {
  const float *x, *y, *dy, *mean, *invstd, *weight, *scale, *shift;
  float *dx, *dweight, *dbias, *dresidual;
  uint16_t* dx_bf16;
  int64_t n, c, hw;
  bool blocked, training;
  float relu_cap;
};
void batchnorm_backward_fast(const BatchNormBackward& a);

// f32 to bf16 as AVX512-BF16's vcvtneps2bf16 rounds (and oneDNN's conversions with it): to
// nearest even, denormal inputs as zero, NaN kept quiet. n values, any n.
void round_to_bf16(const float* in, uint16_t* out, int64_t n);

// The same kernels compiled for any x86-64 and with AVX-512; the entry points above choose.
namespace generic {
void batchnorm_forward_fast(const BatchNormForward& a);
void batchnorm_backward_fast(const BatchNormBackward& a);
void round_to_bf16(const float* in, uint16_t* out, int64_t n);
}  // namespace generic
namespace avx512 {
void batchnorm_forward_fast(const BatchNormForward& a);
void batchnorm_backward_fast(const BatchNormBackward& a);
void round_to_bf16(const float* in, uint16_t* out, int64_t n);
}  // namespace avx512

}  // namespace sieve::cpu
