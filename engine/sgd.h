// Stochastic gradient descent exactly as PyTorch's torch.optim.SGD, as one fused pass over the
// flat parameter and gradient buffers (engine/parameters.h), with an optional pruning mask.
#pragma once
#include <cstdint>

#include "engine/rng.h"  // SIEVE_HD
#include "engine/tensor.h"

namespace sieve {

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// Per element, with the mask m (1 without one):
//   g = m * grad; d = g + wd * w; if momentum: buf = (first step) ? d : momentum * buf + (1 -
//   dampening) * d; d = nesterov ? d + momentum * buf : buf; w = m * (w - lr * d).
// Pruned weights therefore stay exactly 0, even with weight decay and momentum.
class Sgd {
 public:
  // values, grads: flat (total,) buffers on the same device, f32 (or f64 on the CPU).
  Sgd(Tensor values, Tensor grads, SgdOptions options);

  // A flat 0/1 buffer of the same size, dtype and device; the values are multiplied by it at once
  // and after every step. An undefined tensor removes the mask.
  void set_mask(Tensor mask);
  // One update at the current lr. Whether this is the first step (the momentum buffer starts
  // as d) is decided on the host, so a CUDA graph should capture a step after the first.
  void step();
  void zero_grad();

  // On CUDA the lr lives in device memory, so a step captured in a CUDA graph follows set_lr.
  void set_lr(double lr);
  // CUDA: the (1,) f32 the kernel reads the lr from; the training step writes each step's value
  // there on the device.
  const Tensor& lr_on_device() const { return lr_on_device_; }
  // CUDA: a (1,) i64 flag on the device; while it is non-zero, step() changes nothing (the
  // training step raises it on a non-finite loss, before that step's update). Undefined: none.
  void set_halt_flag(Tensor flag);
  // A step replayed from a CUDA graph (the kernel ran without step() being called).
  void count_replayed_step() { ++steps_; }
  double lr() const { return options_.lr; }
  const SgdOptions& options() const { return options_; }

  // For checkpoints: the momentum buffer (undefined without momentum) and the number of steps.
  Tensor momentum_buffer() const { return momentum_buffer_; }
  int64_t steps() const { return steps_; }
  void restore(Tensor momentum_buffer, int64_t steps);

 private:
  Tensor values_, grads_, mask_, momentum_buffer_;
  Tensor lr_on_device_;  // (1,) f32, CUDA only
  Tensor halt_;          // (1,) i64, CUDA only, optional
  SgdOptions options_;
  int64_t steps_ = 0;
};

// The f32 coefficients of one step, and the element update shared by the CPU loop and the CUDA
// kernel. Both round the same operations in the same order (the device side uses _rn
// intrinsics, which nvcc never contracts into FMAs), so CPU and GPU agree bit for bit.
template <class T>
struct SgdCoefficientsT {
  T momentum, one_minus_dampening, weight_decay;
  bool nesterov, first_step;
};
using SgdCoefficients = SgdCoefficientsT<float>;

// Round-to-nearest products and sums that nvcc never contracts into FMAs, so the CUDA update
// is bit-identical to the CPU loop.
template <class T>
SIEVE_HD T sgd_mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return __fmul_rn(a, b);
#endif
  return a * b;
}

template <class T>
SIEVE_HD T sgd_add(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == 4) return __fadd_rn(a, b);
#endif
  return a + b;
}

// Returns the new weight; updates *buf (unused without momentum). T: float, or double on the CPU.
template <class T>
SIEVE_HD T sgd_update(T w, T grad, T mask, T* buf, T lr, const SgdCoefficientsT<T>& k) {
  T d = sgd_mul(grad, mask);
  if (k.weight_decay != T(0)) d = sgd_add(d, sgd_mul(k.weight_decay, w));
  if (k.momentum != T(0)) {
    const T b = k.first_step ? d : sgd_add(sgd_mul(*buf, k.momentum), sgd_mul(k.one_minus_dampening, d));
    *buf = b;
    d = k.nesterov ? sgd_add(d, sgd_mul(k.momentum, b)) : b;
  }
  return sgd_mul(sgd_add(w, -sgd_mul(lr, d)), mask);
}

}  // namespace sieve
