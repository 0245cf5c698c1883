#include "engine/sgd.h"

#include <utility>

#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/elementwise_cuda.h"
#include "engine/cuda/sgd_cuda.h"
#endif

namespace sieve {

namespace {

// A flat buffer of the parameters' size, dtype (f32; f64 on the CPU for exact checks) and device.
void check_flat(const char* what, const Tensor& t, const Tensor& values) {
  SIEVE_CHECK(t.defined(), "sgd: ", what, " is undefined");
  SIEVE_CHECK(values.dtype() == DType::f32 || (values.dtype() == DType::f64 && !values.is_cuda()),
              "sgd: parameters must be f32 (or f64 on the CPU), got ", dtype_name(values.dtype()));
  check_dtype("sgd", t, what, values.dtype());
  check_ndim("sgd", t, what, 1);
  SIEVE_CHECK(t.numel() == values.numel(), "sgd: ", what, " ", shape_str(t.shape()), " and values ",
              shape_str(values.shape()), " differ in size");
  check_same_device("sgd", t, values);
}

}  // namespace

Sgd::Sgd(Tensor values, Tensor grads, SgdOptions options)
    : values_(std::move(values)), grads_(std::move(grads)), options_(options) {
  check_flat("values", values_, values_);
  check_flat("grads", grads_, values_);
  // torch.optim.SGD's own argument checks.
  SIEVE_CHECK(options_.lr >= 0.0, "sgd: lr must be >= 0, got ", options_.lr);
  SIEVE_CHECK(options_.momentum >= 0.0, "sgd: momentum must be >= 0, got ", options_.momentum);
  SIEVE_CHECK(options_.weight_decay >= 0.0, "sgd: weight_decay must be >= 0, got ",
              options_.weight_decay);
  SIEVE_CHECK(!options_.nesterov || (options_.momentum > 0.0 && options_.dampening == 0.0),
              "sgd: nesterov needs momentum > 0 and dampening 0");
  if (options_.momentum != 0.0) momentum_buffer_ = Tensor::zeros_like(values_);
  if (values_.is_cuda()) lr_on_device_ = Tensor::empty({1}, DType::f32, Device::cuda);
  set_lr(options_.lr);
}

void Sgd::set_mask(Tensor mask) {
  if (!mask.defined()) {
    mask_ = Tensor();
    return;
  }
  check_flat("mask", mask, values_);
  mask_ = std::move(mask);
  const int64_t n = values_.numel();
  if (values_.is_cuda()) {
    SIEVE_IF_CUDA(cuda::mul(values_.data<float>(), mask_.data<float>(), values_.data<float>(), n));
    return;
  }
  dispatch_float("sgd", values_.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* w = values_.data<T>();
    const T* m = mask_.data<T>();
    for (int64_t i = 0; i < n; ++i) w[i] *= m[i];
  });
}

void Sgd::step() {
  const int64_t n = values_.numel();
  if (values_.is_cuda()) {
    const SgdCoefficients k{static_cast<float>(options_.momentum), static_cast<float>(1.0 - options_.dampening),
                            static_cast<float>(options_.weight_decay), options_.nesterov, steps_ == 0};
    SIEVE_IF_CUDA(cuda::sgd_step(values_.data<float>(), grads_.data<float>(),
                                 momentum_buffer_.defined() ? momentum_buffer_.data<float>() : nullptr,
                                 mask_.defined() ? mask_.data<float>() : nullptr, lr_on_device_.data<float>(),
                                 halt_.defined() ? halt_.data<int64_t>() : nullptr, n, k));
  } else {
    dispatch_float("sgd", values_.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const SgdCoefficientsT<T> k{static_cast<T>(options_.momentum), static_cast<T>(1.0 - options_.dampening),
                                  static_cast<T>(options_.weight_decay), options_.nesterov, steps_ == 0};
      const T lr = static_cast<T>(options_.lr);
      T* w = values_.data<T>();
      const T* g = grads_.data<T>();
      T* buf = momentum_buffer_.defined() ? momentum_buffer_.data<T>() : nullptr;
      const T* mask = mask_.defined() ? mask_.data<T>() : nullptr;
#pragma omp parallel for if (n > 65536)
      for (int64_t i = 0; i < n; ++i) w[i] = sgd_update(w[i], g[i], mask ? mask[i] : T(1), buf ? buf + i : nullptr, lr, k);
    });
  }
  ++steps_;
}

void Sgd::zero_grad() { grads_.zero_(); }

void Sgd::set_halt_flag(Tensor flag) {
  if (flag.defined()) {
    SIEVE_CHECK(values_.is_cuda() && flag.is_cuda() && flag.dtype() == DType::i64 && flag.numel() == 1,
                "sgd: the halt flag is one i64 on the GPU, beside CUDA parameters");
  }
  halt_ = std::move(flag);
}

void Sgd::set_lr(double lr) {
  SIEVE_CHECK(lr >= 0.0, "sgd: lr must be >= 0, got ", lr);
  options_.lr = lr;
  if (lr_on_device_.defined()) lr_on_device_.fill_(lr);
}

void Sgd::restore(Tensor momentum_buffer, int64_t steps) {
  SIEVE_CHECK(steps >= 0, "sgd: restore with a negative step count ", steps);
  if (momentum_buffer_.defined()) {
    // Any device: a checkpoint is read on the host.
    SIEVE_CHECK(momentum_buffer.defined(), "sgd: restore needs the momentum buffer (momentum is ",
                options_.momentum, ")");
    check_dtype("sgd", momentum_buffer, "restored momentum buffer", values_.dtype());
    SIEVE_CHECK(momentum_buffer.numel() == values_.numel(), "sgd: restored momentum buffer ",
                shape_str(momentum_buffer.shape()), " and values ", shape_str(values_.shape()),
                " differ in size");
    momentum_buffer_.copy_(momentum_buffer);
  } else {
    SIEVE_CHECK(!momentum_buffer.defined(), "sgd: restore got a momentum buffer but momentum is 0");
  }
  steps_ = steps;
}

}  // namespace sieve
