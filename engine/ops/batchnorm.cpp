// batchnorm2d: per-channel statistics, normalise + affine (+ ReLU), and the backward that
// reduces sum(g) and sum(g * xhat) per channel before forming dx.
#include "engine/ops/batchnorm.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/cpu/kernels.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/ops/elementwise.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/batchnorm_cuda.h"
#endif

namespace sieve {

namespace {

constexpr const char* kOp = "batchnorm2d";

// x viewed as (N, C, HW): the per-channel loops below walk these extents.
struct Extents {
  int64_t N, C, HW;
  int64_t per_channel() const { return N * HW; }
};

Extents extents(const Tensor& x) { return {x.dim(0), x.dim(1), x.dim(2) * x.dim(3)}; }

void check_channel_vector(const Tensor& x, const Tensor& t, const char* name) {
  SIEVE_CHECK(t.defined(), kOp, ": ", name, " is undefined");
  SIEVE_CHECK(t.ndim() == 1 && t.dim(0) == x.dim(1), kOp, ": ", name, " must have shape (",
              x.dim(1), ",) to match the channels of x ", shape_str(x.shape()), ", got ",
              shape_str(t.shape()));
  check_same_device(kOp, x, t);
  check_dtype(kOp, t, name, x.dtype());
}

void check_inputs(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, const BatchNormParams& p) {
  SIEVE_CHECK(x.defined(), kOp, ": x is undefined");
  check_ndim(kOp, x, "x (N, C, H, W)", 4);
  check_channel_vector(x, weight, "weight");
  check_channel_vector(x, bias, "bias");
  check_channel_vector(x, running_mean, "running_mean");
  check_channel_vector(x, running_var, "running_var");
  SIEVE_CHECK(p.eps > 0.0, kOp, ": eps must be positive, got ", p.eps);
  SIEVE_CHECK(p.relu_cap > 0.0, kOp, ": relu_cap must be positive, got ", p.relu_cap);
  SIEVE_CHECK(p.momentum >= 0.0 && p.momentum <= 1.0, kOp, ": momentum must be in [0, 1], got ",
              p.momentum);
  // The unbiased running variance divides by N*H*W - 1.
  SIEVE_CHECK(!p.training || extents(x).per_channel() > 1, kOp,
              ": training needs more than one value per channel, got x ", shape_str(x.shape()));
}

// Calls f(i) for every flat index i of channel c.
template <class F>
void for_each_in_channel(const Extents& e, int64_t c, F&& f) {
  for (int64_t n = 0; n < e.N; ++n) {
    const int64_t base = (n * e.C + c) * e.HW;
    for (int64_t i = 0; i < e.HW; ++i) f(base + i);
  }
}

// Fills mean and invstd (C,) with the statistics used to normalise (batch in training, running
// in eval), updates the running stats in training, and writes y.
template <class T>
void forward_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                 const Tensor& running_mean, const Tensor& running_var, const BatchNormParams& p,
                 const Tensor& residual, const Tensor& mean, const Tensor& invstd, const Tensor& y) {
  const Extents e = extents(x);
  const double M = static_cast<double>(e.per_channel());
  const T* xp = x.data<T>();
  const T* rp = residual.defined() ? residual.data<T>() : nullptr;
  const T* w = weight.data<T>();
  const T* b = bias.data<T>();
  T* rm = running_mean.data<T>();
  T* rv = running_var.data<T>();
  T* mp = mean.data<T>();
  T* ip = invstd.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for
  for (int64_t c = 0; c < e.C; ++c) {
    double mu, istd;
    if (p.training) {
      double sum = 0.0, sq = 0.0;
      for_each_in_channel(e, c, [&](int64_t i) { sum += xp[i]; });
      mu = sum / M;
      for_each_in_channel(e, c, [&](int64_t i) { sq += (xp[i] - mu) * (xp[i] - mu); });
      const double var = sq / M;
      istd = 1.0 / std::sqrt(var + p.eps);
      rm[c] = static_cast<T>((1.0 - p.momentum) * rm[c] + p.momentum * mu);
      rv[c] = static_cast<T>((1.0 - p.momentum) * rv[c] + p.momentum * var * M / (M - 1.0));
    } else {
      mu = rm[c];
      istd = 1.0 / std::sqrt(static_cast<double>(rv[c]) + p.eps);
    }
    mp[c] = static_cast<T>(mu);
    ip[c] = static_cast<T>(istd);
    for_each_in_channel(e, c, [&](int64_t i) {
      const double v = (xp[i] - mu) * istd * w[c] + b[c] + (rp ? double(rp[i]) : 0.0);
      // relu / relu6's selects: NaN stays NaN.
      const double low = p.fuse_relu && v < 0.0 ? 0.0 : v;
      yp[i] = static_cast<T>(p.fuse_relu && low > p.relu_cap ? p.relu_cap : low);
    });
  }
}

// y is defined only with a fused ReLU: the gradient flows where 0 < y < relu_cap (0 < y when
// relu_cap is +inf). dx may be undefined (x needs no gradient); dweight and dbias (C,) are always
// written; dresidual, when defined, gets the gradient of a fused residual: the masked dy.
template <class T>
void backward_cpu(const Tensor& x, const Tensor& y, double relu_cap, const Tensor& dy, const Tensor& mean,
                  const Tensor& invstd, const Tensor& weight, bool training, const Tensor& dx,
                  const Tensor& dweight, const Tensor& dbias, const Tensor& dresidual) {
  T* drp = dresidual.defined() ? dresidual.data<T>() : nullptr;
  const bool capped = !std::isinf(relu_cap);
  const Extents e = extents(x);
  const double M = static_cast<double>(e.per_channel());
  const T* xp = x.data<T>();
  const T* yp = y.defined() ? y.data<T>() : nullptr;
  const T* dyp = dy.data<T>();
  const T* mp = mean.data<T>();
  const T* ip = invstd.data<T>();
  const T* w = weight.data<T>();
  T* dxp = dx.defined() ? dx.data<T>() : nullptr;
  T* dw = dweight.data<T>();
  T* db = dbias.data<T>();
#pragma omp parallel for
  for (int64_t c = 0; c < e.C; ++c) {
    const double mu = mp[c], istd = ip[c];
    auto g = [&](int64_t i) -> double {
      return yp && (!(yp[i] > T(0)) || (capped && !(yp[i] < relu_cap))) ? 0.0 : dyp[i];
    };
    auto xhat = [&](int64_t i) { return (xp[i] - mu) * istd; };
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for_each_in_channel(e, c, [&](int64_t i) {
      sum_g += g(i);
      sum_g_xhat += g(i) * xhat(i);
    });
    dw[c] = static_cast<T>(sum_g_xhat);
    db[c] = static_cast<T>(sum_g);
    if (drp) for_each_in_channel(e, c, [&](int64_t i) { drp[i] = static_cast<T>(g(i)); });
    if (!dxp) continue;
    const double scale = w[c] * istd;
    for_each_in_channel(e, c, [&](int64_t i) {
      dxp[i] = static_cast<T>(training ? scale / M * (M * g(i) - sum_g - xhat(i) * sum_g_xhat)
                                       : scale * g(i));
    });
  }
}

// The CPU fast path's f32 kernels (engine/cpu/kernels.cpp); the loops above are their oracle.
bool use_fast(const Tensor& x) { return !x.is_cuda() && x.dtype() == DType::f32 && cpu_fast_path(); }

void forward_fast(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, const BatchNormParams& p, const Tensor& residual, const Tensor& mean,
                  const Tensor& invstd, const Tensor& y, const Tensor& affine) {
  const Extents e = extents(x);
  float* scale = affine.defined() ? affine.data<float>() : nullptr;
  cpu::batchnorm_forward_fast({x.elements<float>(), residual.defined() ? residual.elements<float>() : nullptr,
                               weight.data<float>(), bias.data<float>(),
                               running_mean.data<float>(), running_var.data<float>(), mean.data<float>(),
                               invstd.data<float>(), y.elements<float>(), scale, scale ? scale + e.C : nullptr,
                               e.N, e.C, e.HW, x.blocked(), p.training, p.fuse_relu, static_cast<float>(p.relu_cap),
                               p.momentum, p.eps});
}

// affine (2, C) or undefined: the forward's scale and shift (forward_fast), from which the ReLU's
// mask is recomputed instead of read from y.
void backward_fast(const Tensor& x, const Tensor& y, const Tensor& affine, double relu_cap, const Tensor& dy,
                   const Tensor& mean, const Tensor& invstd, const Tensor& weight, bool training, const Tensor& dx,
                   const Tensor& dweight, const Tensor& dbias, const Tensor& dresidual) {
  const Extents e = extents(x);
  const float* scale = affine.defined() ? affine.data<float>() : nullptr;
  // x, y, dy and dx share x's layout (blocked or plain).
  cpu::batchnorm_backward_fast({x.elements<float>(), y.defined() && !scale ? y.elements<float>() : nullptr,
                                dy.elements<float>(), mean.data<float>(), invstd.data<float>(), weight.data<float>(),
                                scale, scale ? scale + e.C : nullptr,
                                dx.defined() && dx.dtype() == DType::f32 ? dx.elements<float>() : nullptr,
                                dweight.data<float>(), dbias.data<float>(),
                                dresidual.defined() ? dresidual.elements<float>() : nullptr,
                                dx.defined() && dx.dtype() == DType::bf16 ? static_cast<uint16_t*>(dx.raw()) : nullptr,
                                e.N, e.C, e.HW, x.blocked(), training, static_cast<float>(relu_cap)});
}

#if SIEVE_WITH_CUDA
void forward_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  const Tensor& running_mean, const Tensor& running_var, const BatchNormParams& p,
                  const Tensor& mean, const Tensor& invstd, const Tensor& y) {
  const Extents e = extents(x);
  if (p.training)
    cuda::batchnorm_batch_stats(x.data<float>(), e.N, e.C, e.HW, p.eps, p.momentum,
                                mean.data<float>(), invstd.data<float>(),
                                running_mean.data<float>(), running_var.data<float>());
  else
    cuda::batchnorm_running_stats(running_mean.data<float>(), running_var.data<float>(), e.C, p.eps,
                                  mean.data<float>(), invstd.data<float>());
  cuda::batchnorm_forward(x.data<float>(), mean.data<float>(), invstd.data<float>(),
                          weight.data<float>(), bias.data<float>(), y.data<float>(), e.N, e.C, e.HW,
                          p.fuse_relu);
}

void backward_cuda(const Tensor& x, const Tensor& y, const Tensor& dy, const Tensor& mean,
                   const Tensor& invstd, const Tensor& weight, bool training, const Tensor& dx,
                   const Tensor& dweight, const Tensor& dbias) {
  const Extents e = extents(x);
  const float* yp = y.defined() ? y.data<float>() : nullptr;
  cuda::batchnorm_backward_reduce(x.data<float>(), yp, dy.data<float>(), mean.data<float>(),
                                  invstd.data<float>(), e.N, e.C, e.HW, dbias.data<float>(),
                                  dweight.data<float>());
  if (dx.defined())
    cuda::batchnorm_backward_input(x.data<float>(), yp, dy.data<float>(), mean.data<float>(),
                                   invstd.data<float>(), weight.data<float>(), dbias.data<float>(),
                                   dweight.data<float>(), dx.data<float>(), e.N, e.C, e.HW,
                                   training);
}
#endif

}  // namespace

Tensor batchnorm2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                   const Tensor& running_mean, const Tensor& running_var, BatchNormParams p,
                   const Tensor& residual) {
  if (x.blocked() && !use_fast(x))
    return batchnorm2d(to_plain(x), weight, bias, running_mean, running_var, p,
                       residual.defined() ? to_plain(residual) : residual);
  check_inputs(x, weight, bias, running_mean, running_var, p);
  if (residual.defined()) {
    check_same_shape(kOp, x, "x", residual, "residual");
    check_same_device(kOp, x, residual);
    check_dtype(kOp, residual, "residual", x.dtype());
  }
  const bool capped = p.fuse_relu && !std::isinf(p.relu_cap);
  if (x.is_cuda() && (capped || residual.defined())) {
    // The CUDA kernels fuse a plain ReLU only: a capped one, or a residual join, runs as its ops.
    BatchNormParams plain = p;
    plain.fuse_relu = false;
    Tensor y = batchnorm2d(x, weight, bias, running_mean, running_var, plain);
    if (residual.defined()) y = add(y, residual);
    return p.fuse_relu ? relu_capped(y, p.relu_cap) : y;
  }
  // The residual in x's layout (its gradient goes back to it in its own, by accumulate).
  const Tensor r = residual.defined() ? residual.relayout(x.blocked()) : Tensor();
  Tensor y = Tensor::empty_like(x);  // x's layout
  Tensor mean = Tensor::empty_like(running_mean);
  Tensor invstd = Tensor::empty_like(running_mean);
  // The fast kernels' affine, kept for the backward's ReLU mask where y would be its only use.
  Tensor affine;
  if (x.is_cuda()) {
    check_cuda_f32(kOp, x);
    SIEVE_IF_CUDA(forward_cuda(x, weight, bias, running_mean, running_var, p, mean, invstd, y));
  } else if (use_fast(x)) {
    if (p.fuse_relu && !residual.defined()) affine = Tensor::empty({2, x.dim(1)}, DType::f32, Device::cpu);
    forward_fast(x, weight, bias, running_mean, running_var, p, r, mean, invstd, y, affine);
  } else {
    dispatch_float(kOp, x.dtype(), [&](auto tag) {
      forward_cpu<decltype(tag)>(x, weight, bias, running_mean, running_var, p, r, mean, invstd, y);
    });
  }
  if (autograd::needs_grad({&x, &weight, &bias, &residual})) {
    // The ReLU mask is read from y itself, so y is kept only when the ReLU is fused.
    // (Its data only: the node must not own its own output.) The fast kernels recompute it from
    // x and affine instead, when the forward ran them.
    const Tensor relu_out = p.fuse_relu ? y.view(y.shape()) : Tensor();
    autograd::record(
        y, {&x, &weight, &bias, &residual},
        [x, weight, bias, residual, mean, invstd, relu_out, affine, cap = p.relu_cap,
         training = p.training](const Tensor& dy_any) {
          // The fast path works in x's layout; the others take plain tensors.
          const bool fast = use_fast(dy_any);
          const Tensor dy = dy_any.relayout(fast && x.blocked());
          const Tensor xs = fast ? x : x.relayout(false), ys = fast ? relu_out : relu_out.relayout(false);
          // x from a bf16 convolution: its gradient handed over in bf16 (autograd::accept_bf16_grad).
          const bool dx_bf16 = fast && x.blocked() && cpu_bf16_handoff() && autograd::accepts_bf16_grad(x);
          Tensor dx = !x.requires_grad() ? Tensor()
                      : dx_bf16          ? Tensor::empty_blocked(x.shape(), DType::bf16)
                                         : Tensor::empty_like(xs);
          Tensor dweight = Tensor::empty_like(weight);
          Tensor dbias = Tensor::empty_like(bias);
          Tensor dresidual = residual.defined() && residual.requires_grad() ? Tensor::empty_like(xs) : Tensor();
          if (dy.is_cuda()) {
            SIEVE_IF_CUDA(
                backward_cuda(x, relu_out, dy, mean, invstd, weight, training, dx, dweight, dbias));
          } else if (fast) {
            backward_fast(xs, ys, affine, cap, dy, mean, invstd, weight, training, dx, dweight, dbias, dresidual);
          } else {
            dispatch_float(kOp, dy.dtype(), [&](auto tag) {
              backward_cpu<decltype(tag)>(xs, ys, cap, dy, mean, invstd, weight, training, dx, dweight, dbias,
                                          dresidual);
            });
          }
          autograd::accumulate_fresh(x, std::move(dx));
          autograd::accumulate_fresh(weight, std::move(dweight));
          autograd::accumulate_fresh(bias, std::move(dbias));
          autograd::accumulate_fresh(residual, std::move(dresidual));
        });
  }
  return y;
}

}  // namespace sieve
