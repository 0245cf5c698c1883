#include "engine/ops/elementwise.h"

#include <cmath>
#include <limits>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/elementwise_cuda.h"
#endif

namespace sieve {

namespace {

// Elementwise CPU loops are threaded from this many elements on; below it waking the thread pool
// costs more than the loop. Threading does not change any result.
constexpr int64_t kParallelMin = 1 << 15;

// The gradient through y = clamp(x, 0, cap): dy where 0 < y < cap, or where 0 < y when cap is
// +inf (ReLU, as PyTorch's threshold_backward: +inf passes its gradient).
Tensor clamp_grad(const char* op, const Tensor& y, const Tensor& dy_any, double cap) {
  const Tensor dy = dy_any.relayout(y.blocked());
  Tensor dx = Tensor::empty_like(dy);
  const int64_t n = dy.numel();
  if (dy.is_cuda()) {
    SIEVE_IF_CUDA(cuda::clamp_backward(y.data<float>(), dy.data<float>(), dx.data<float>(), n, static_cast<float>(cap)));
    return dx;
  }
  // Branch-free selects (no short-circuit, no runtime cap test inside the loop), so the loops
  // vectorise: ReLU6's masks are a large share of MobileNetV2's step.
  const bool capped = !std::isinf(cap);
  dispatch_float(op, dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* yp = y.elements<T>();  // one layout, so elementwise in storage order
    const T* g = dy.elements<T>();
    T* d = dx.elements<T>();
    const T top = static_cast<T>(cap);
    // Both operands loaded unconditionally: a load under the condition keeps the loop scalar.
    if (capped) {
#pragma omp parallel for simd if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const T yi = yp[i], gi = g[i];
        const T low = yi > T(0) ? gi : T(0);
        d[i] = yi < top ? low : T(0);
      }
    } else {
#pragma omp parallel for simd if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const T yi = yp[i], gi = g[i];
        d[i] = yi > T(0) ? gi : T(0);
      }
    }
  });
  return dx;
}

// y = clamp(x, 0, cap) and its backward, shared by relu (cap = inf) and relu6.
Tensor clamp_op(const char* op, const Tensor& x, double cap) {
  Tensor y = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (x.is_cuda()) {
    check_cuda_f32(op, x);
    SIEVE_IF_CUDA(cuda::clamp_forward(x.data<float>(), y.data<float>(), n, static_cast<float>(cap)));
  } else {
    dispatch_float(op, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.elements<T>();  // y has x's layout
      T* yp = y.elements<T>();
      const T top = static_cast<T>(cap);
      // Selects that keep NaN (no comparison with NaN is true) and vectorise.
#pragma omp parallel for simd if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const T v = xp[i] < T(0) ? T(0) : xp[i];
        yp[i] = v > top ? top : v;
      }
    });
  }
  if (autograd::needs_grad({&x})) {
    // The closure keeps y's data, not y itself: the node must not own its own output.
    autograd::record(y, {&x}, [x, out = y.view(y.shape()), cap, op](const Tensor& dy) {
      autograd::accumulate_fresh(x, clamp_grad(op, out, dy, cap));
    });
  }
  return y;
}

// y = s * x (no autograd), the kernel behind scale() and its backward.
Tensor scaled(const Tensor& x, double s) {
  Tensor y = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (x.is_cuda()) {
    check_cuda_f32("scale", x);
    SIEVE_IF_CUDA(cuda::scale(x.data<float>(), static_cast<float>(s), y.data<float>(), n));
  } else {
    dispatch_float("scale", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.elements<T>();  // y has x's layout
      T* yp = y.elements<T>();
#pragma omp parallel for simd if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) yp[i] = static_cast<T>(s) * xp[i];
    });
  }
  return y;
}

// y = a * b elementwise (no autograd), for dropout's mask.
Tensor multiplied(const Tensor& a, const Tensor& b_any) {
  const Tensor b = b_any.relayout(a.blocked());
  Tensor y = Tensor::empty_like(a);
  const int64_t n = a.numel();
  if (a.is_cuda()) {
    SIEVE_IF_CUDA(cuda::mul(a.data<float>(), b.data<float>(), y.data<float>(), n));
  } else {
    dispatch_float("mul", a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* ap = a.elements<T>();  // one layout
      const T* bp = b.elements<T>();
      T* yp = y.elements<T>();
#pragma omp parallel for simd if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] * bp[i];
    });
  }
  return y;
}

// y = a + b, then max(y, 0) when relu: the residual join of ResNet blocks in one pass.
Tensor add_op(const char* op, const Tensor& a, const Tensor& b, bool relu) {
  check_same_shape(op, a, "a", b, "b");
  check_same_device(op, a, b);
  SIEVE_CHECK(a.dtype() == b.dtype(), op, ": dtypes ", dtype_name(a.dtype()), " and ",
              dtype_name(b.dtype()), " differ");
  if (a.blocked() != b.blocked()) return add_op(op, to_plain(a), to_plain(b), relu);
  Tensor y = Tensor::empty_like(a);
  const int64_t n = a.numel();
  if (a.is_cuda()) {
    check_cuda_f32(op, a);
    SIEVE_IF_CUDA(cuda::add(a.data<float>(), b.data<float>(), y.data<float>(), n));
    if (relu)
      SIEVE_IF_CUDA(cuda::clamp_forward(y.data<float>(), y.data<float>(), n, std::numeric_limits<float>::infinity()));
  } else {
    dispatch_float(op, a.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* ap = a.elements<T>();  // one layout
      const T* bp = b.elements<T>();
      T* yp = y.elements<T>();
      if (relu) {
#pragma omp parallel for simd if (n >= kParallelMin)
        for (int64_t i = 0; i < n; ++i) {
          const T v = ap[i] + bp[i];
          yp[i] = v < T(0) ? T(0) : v;
        }
      } else {
#pragma omp parallel for simd if (n >= kParallelMin)
        for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] + bp[i];
      }
    });
  }
  if (autograd::needs_grad({&a, &b})) {
    if (!relu) {
      autograd::record(y, {&a, &b}, [a, b](const Tensor& dy) {
        autograd::accumulate(a, dy);
        autograd::accumulate(b, dy);
      });
    } else {
      autograd::record(y, {&a, &b}, [a, b, out = y.view(y.shape()), op](const Tensor& dy) {
        // The gradient of both inputs is dy where y > 0: the ReLU's backward, computed once.
        Tensor d = clamp_grad(op, out, dy, std::numeric_limits<double>::infinity());
        autograd::accumulate(a, d);
        autograd::accumulate_fresh(b, std::move(d));
      });
    }
  }
  return y;
}

}  // namespace

Tensor relu(const Tensor& x) { return clamp_op("relu", x, std::numeric_limits<double>::infinity()); }
Tensor relu6(const Tensor& x) { return clamp_op("relu6", x, 6.0); }
Tensor relu_capped(const Tensor& x, double cap) {
  SIEVE_CHECK(cap > 0.0, "relu_capped: the cap must be positive, got ", cap);
  return clamp_op(std::isinf(cap) ? "relu" : "relu_capped", x, cap);
}
Tensor add(const Tensor& a, const Tensor& b) { return add_op("add", a, b, false); }
Tensor add_relu(const Tensor& a, const Tensor& b) { return add_op("add_relu", a, b, true); }

Tensor to_plain(const Tensor& x) {
  if (!x.blocked()) return x;
  Tensor y = x.relayout(false);
  // The gradient goes back into x's layout in accumulate.
  if (autograd::needs_grad({&x})) autograd::record(y, {&x}, [x](const Tensor& dy) { autograd::accumulate(x, dy); });
  return y;
}

Tensor to_blocked(const Tensor& x) {
  if (x.blocked() || !cpu_fast_path() || !cpu_blocked_layout() || !Tensor::can_block(x.shape(), x.dtype(), x.device()))
    return x;
  Tensor y = x.relayout(true);
  if (autograd::needs_grad({&x})) autograd::record(y, {&x}, [x](const Tensor& dy) { autograd::accumulate(x, dy); });
  return y;
}

Tensor scale(const Tensor& x, double s) {
  Tensor y = scaled(x, s);
  if (autograd::needs_grad({&x}))
    autograd::record(y, {&x}, [x, s](const Tensor& dy) { autograd::accumulate(x, scaled(dy, s)); });
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  if (x.blocked()) return reshape(to_plain(x), shape);
  Tensor y = x.view(shape);
  if (autograd::needs_grad({&x}))
    autograd::record(y, {&x}, [x](const Tensor& dy) { autograd::accumulate(x, dy.view(x.shape())); });
  return y;
}

Tensor flatten(const Tensor& x) {
  SIEVE_CHECK(x.ndim() >= 1, "flatten: input must have a batch dimension, got ", shape_str(x.shape()));
  return reshape(x, {x.dim(0), x.dim(0) == 0 ? 0 : x.numel() / x.dim(0)});
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen, const Tensor& device_offset) {
  SIEVE_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  if (x.blocked()) return dropout(to_plain(x), p, training, gen, device_offset);
  const int64_t n = x.numel();
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(n));
  Tensor mask = Tensor::empty_like(x);
  Tensor y = Tensor::empty_like(x);
  const float pf = static_cast<float>(p);
  if (x.is_cuda()) {
    check_cuda_f32("dropout", x);
    if (device_offset.defined())
      SIEVE_CHECK(device_offset.is_cuda() && device_offset.dtype() == DType::i64 && device_offset.numel() == 1,
                  "dropout: the device offset is one i64 on the GPU");
    SIEVE_IF_CUDA(cuda::dropout_forward(x.data<float>(), y.data<float>(), mask.data<float>(), n, pf, gen.seed(),
                                        offset, device_offset.defined() ? device_offset.data<int64_t>() : nullptr));
  } else {
    dispatch_float("dropout", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T keep_scale = static_cast<T>(1.0f / (1.0f - pf));
      const T* xp = x.data<T>();
      T* mp = mask.data<T>();
      T* yp = y.data<T>();
      for (int64_t i = 0; i < n; ++i) {
        mp[i] = philox_uniform(gen.seed(), offset + i) >= pf ? keep_scale : T(0);
        yp[i] = xp[i] * mp[i];
      }
    });
  }
  if (autograd::needs_grad({&x}))
    autograd::record(y, {&x}, [x, mask](const Tensor& dy) { autograd::accumulate(x, multiplied(dy, mask)); });
  return y;
}

}  // namespace sieve
