#include "engine/ops/linear.h"

#include "engine/autograd.h"
#include "engine/flops.h"
#include "engine/blas.h"
#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/linear_cuda.h"
#endif

namespace sieve {

namespace {

// c (m x n) = op(a) op(b) for contiguous row-major matrices on the tensors' device.
void matmul(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
            const Tensor& a, const Tensor& b, const Tensor& c) {
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  if (c.is_cuda()) {
    check_cuda_f32(op, c);
    SIEVE_IF_CUDA(cuda::gemm(trans_a, trans_b, m, n, k, 1.0f, a.data<float>(), lda,
                             b.data<float>(), ldb, 0.0f, c.data<float>(), n));
    return;
  }
  dispatch_float(op, c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gemm<T>(trans_a, trans_b, m, n, k, T(1), a.data<T>(), lda, b.data<T>(), ldb, T(0), c.data<T>(), n);
  });
}

// (outer, channels, inner) view of a tensor whose dim 1 is the channel axis.
struct ChannelLayout {
  int64_t outer, channels, inner;
};

ChannelLayout channel_layout(const Tensor& t) {
  const int64_t outer = t.dim(0), channels = t.dim(1);
  return {outer, channels, outer * channels == 0 ? 0 : t.numel() / (outer * channels)};
}

}  // namespace

void add_channel_bias_(const Tensor& y, const Tensor& bias) {
  const ChannelLayout layout = channel_layout(y);  // named fields: lambdas below capture them
  const int64_t outer = layout.outer, channels = layout.channels, inner = layout.inner;
  SIEVE_CHECK(bias.numel() == channels, "bias: ", shape_str(bias.shape()), " does not match the ",
              channels, " channels of ", shape_str(y.shape()));
  if (y.is_cuda()) {
    check_cuda_f32("bias", y);
    SIEVE_IF_CUDA(cuda::add_channel_bias(y.data<float>(), bias.data<float>(), outer, channels, inner));
    return;
  }
  dispatch_float("bias", y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    const T* b = bias.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < inner; ++i) yp[(o * channels + c) * inner + i] += b[c];
  });
}

Tensor channel_bias_grad(const Tensor& dy) {
  const ChannelLayout layout = channel_layout(dy);
  const int64_t outer = layout.outer, channels = layout.channels, inner = layout.inner;
  Tensor db = Tensor::empty({channels}, dy.dtype(), dy.device());
  if (dy.is_cuda()) {
    check_cuda_f32("bias gradient", dy);
    SIEVE_IF_CUDA(cuda::channel_bias_grad(dy.data<float>(), db.data<float>(), outer, channels, inner));
    return db;
  }
  dispatch_float("bias gradient", dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = dy.data<T>();
    T* d = db.data<T>();
    for (int64_t c = 0; c < channels; ++c) d[c] = T(0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < inner; ++i) d[c] += g[(o * channels + c) * inner + i];
  });
  return db;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_ndim("linear", x, "input", 2);
  check_ndim("linear", w, "weight", 2);
  const int64_t batch = x.dim(0), in = x.dim(1), out = w.dim(0);
  SIEVE_CHECK(w.dim(1) == in, "linear: input ", shape_str(x.shape()), " has ", in,
              " features but weight ", shape_str(w.shape()), " expects ", w.dim(1));
  check_dtype("linear", w, "weight", x.dtype());
  check_same_device("linear", x, w);
  count_flops(2 * batch * in * out);
  if (bias.defined()) {
    SIEVE_CHECK(bias.ndim() == 1 && bias.dim(0) == out, "linear: bias ", shape_str(bias.shape()),
                " must be ", shape_str({out}), ", one value per output feature of weight ",
                shape_str(w.shape()));
    check_dtype("linear", bias, "bias", x.dtype());
    check_same_device("linear", x, bias);
  }

  Tensor y = Tensor::empty({batch, out}, x.dtype(), x.device());
  matmul("linear", false, true, batch, out, in, x, w, y);  // y = x w^T
  if (bias.defined()) add_channel_bias_(y, bias);

  if (autograd::needs_grad({&x, &w, &bias})) {
    autograd::record(y, {&x, &w, &bias}, [x, w, bias](const Tensor& dy) {
      const int64_t batch = x.dim(0), in = x.dim(1), out = w.dim(0);
      if (x.requires_grad()) {
        Tensor dx = Tensor::empty_like(x);
        matmul("linear backward", false, false, batch, in, out, dy, w, dx);  // dx = dy w
        autograd::accumulate_fresh(x, std::move(dx));
      }
      if (w.requires_grad()) {
        Tensor dw = Tensor::empty_like(w);
        matmul("linear backward", true, false, out, in, batch, dy, x, dw);  // dw = dy^T x
        autograd::accumulate_fresh(w, std::move(dw));
      }
      if (bias.requires_grad()) autograd::accumulate(bias, channel_bias_grad(dy));
    });
  }
  return y;
}

}  // namespace sieve
