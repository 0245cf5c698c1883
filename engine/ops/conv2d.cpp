#include "engine/ops/conv2d.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "engine/autograd.h"
#include "engine/blas.h"
#include "engine/cpu/onednn.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/flops.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linear.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/conv2d_cuda.h"
#endif

namespace sieve {

namespace {

// Sizes of one convolution. A group convolves cg() input channels into kg() output channels.
struct Geometry {
  int64_t n, c, h, w, k, r, s, p, q, stride, pad, groups;
  int64_t cg() const { return c / groups; }
  int64_t kg() const { return k / groups; }
  int64_t rows() const { return cg() * r * s; }  // im2col rows of one group: (c, r, s)
  int64_t pq() const { return p * q; }
};

Geometry geometry(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& prm) {
  check_ndim("conv2d", x, "input", 4);
  check_ndim("conv2d", w, "weight", 4);
  SIEVE_CHECK(prm.stride >= 1, "conv2d: stride must be >= 1, got ", prm.stride);
  SIEVE_CHECK(prm.padding >= 0, "conv2d: padding must be >= 0, got ", prm.padding);
  SIEVE_CHECK(prm.groups >= 1, "conv2d: groups must be >= 1, got ", prm.groups);
  check_dtype("conv2d", w, "weight", x.dtype());
  check_same_device("conv2d", x, w);
  const std::string xs = shape_str(x.shape()), ws = shape_str(w.shape());
  SIEVE_CHECK(w.numel() > 0, "conv2d: weight ", ws, " is empty");
  Geometry g{};
  g.n = x.dim(0), g.c = x.dim(1), g.h = x.dim(2), g.w = x.dim(3);
  g.k = w.dim(0), g.r = w.dim(2), g.s = w.dim(3);
  g.stride = prm.stride, g.pad = prm.padding, g.groups = prm.groups;
  SIEVE_CHECK(g.c == w.dim(1) * g.groups, "conv2d: input ", xs, " has ", g.c,
              " channels but weight ", ws, " expects ", w.dim(1), " * groups=", g.groups);
  SIEVE_CHECK(g.k % g.groups == 0, "conv2d: weight ", ws, " has ", g.k,
              " output channels, not a multiple of groups=", g.groups);
  if (bias.defined()) {
    SIEVE_CHECK(bias.ndim() == 1 && bias.dim(0) == g.k, "conv2d: bias ", shape_str(bias.shape()),
                " must be ", shape_str({g.k}), ", one value per output channel of weight ", ws);
    check_dtype("conv2d", bias, "bias", x.dtype());
    check_same_device("conv2d", x, bias);
  }
  const int64_t ph = g.h + 2 * g.pad, pw = g.w + 2 * g.pad;
  SIEVE_CHECK(ph >= g.r && pw >= g.s, "conv2d: kernel ", g.r, "x", g.s,
              " does not fit the padded input ", ph, "x", pw, " (input ", xs, ", padding ", g.pad,
              "): the output would be empty");
  g.p = (ph - g.r) / g.stride + 1;
  g.q = (pw - g.s) / g.stride + 1;
  return g;
}

// Below this many elements an im2col / col2im runs on one thread: waking the pool costs more.
constexpr int64_t kParallelMin = 1 << 14;

// col (Cg*R*S, P*Q) of one sample and group, from its channels x (Cg, H, W):
// col[(c*R + r)*S + s][p*Q + q] = x[c][p*stride - pad + r][q*stride - pad + s], 0 in the padding.
template <class T>
void im2col(const T* x, const Geometry& g, T* col) {
#pragma omp parallel for schedule(static) if (g.rows() * g.pq() >= kParallelMin)
  for (int64_t row = 0; row < g.rows(); ++row) {
    const int64_t c = row / (g.r * g.s), r = row / g.s % g.r, s = row % g.s;
    const T* xc = x + c * g.h * g.w;
    T* out = col + row * g.pq();
    for (int64_t p = 0; p < g.p; ++p) {
      const int64_t ih = p * g.stride - g.pad + r;
      for (int64_t q = 0; q < g.q; ++q) {
        const int64_t iw = q * g.stride - g.pad + s;
        out[p * g.q + q] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? xc[ih * g.w + iw] : T(0);
      }
    }
  }
}

// The adjoint of im2col: adds each col entry into dx (Cg, H, W) at the pixel it was read from.
// Parallel over channels, since the rows of channel c write only dx[c].
template <class T>
void col2im(const T* col, const Geometry& g, T* dx) {
#pragma omp parallel for schedule(static) if (g.rows() * g.pq() >= kParallelMin)
  for (int64_t c = 0; c < g.cg(); ++c) {
    T* dxc = dx + c * g.h * g.w;
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        const T* in = col + ((c * g.r + r) * g.s + s) * g.pq();
        for (int64_t p = 0; p < g.p; ++p) {
          const int64_t ih = p * g.stride - g.pad + r;
          if (ih < 0 || ih >= g.h) continue;
          for (int64_t q = 0; q < g.q; ++q) {
            const int64_t iw = q * g.stride - g.pad + s;
            if (iw >= 0 && iw < g.w) dxc[ih * g.w + iw] += in[p * g.q + q];
          }
        }
      }
  }
}

// Element offsets of sample n, group grp in x (its Cg, H, W), w (Kg, Cg*R*S) and y (Kg, P*Q).
int64_t x_offset(const Geometry& g, int64_t n, int64_t grp) { return (n * g.c + grp * g.cg()) * g.h * g.w; }
int64_t w_offset(const Geometry& g, int64_t grp) { return grp * g.kg() * g.rows(); }
int64_t y_offset(const Geometry& g, int64_t n, int64_t grp) { return (n * g.k + grp * g.kg()) * g.pq(); }

// The loops over samples are sequential: OpenBLAS threads each GEMM itself, and an OpenMP loop
// around its calls would nest two thread pools.

// y (N, K, P, Q), no bias: per sample and group, y_g (Kg, PQ) = w_g (Kg, Cg*R*S) col (Cg*R*S, PQ).
template <class T>
void conv2d_forward_cpu(const T* x, const T* w, T* y, const Geometry& g) {
  std::vector<T> col(static_cast<size_t>(g.rows() * g.pq()));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(x + x_offset(g, n, grp), g, col.data());
      gemm<T>(false, false, g.kg(), g.pq(), g.rows(), T(1), w + w_offset(g, grp), g.rows(),
              col.data(), g.pq(), T(0), y + y_offset(g, n, grp), g.pq());
    }
}

// dx (N, C, H, W): per sample and group, dcol (Cg*R*S, PQ) = w_g^T dy_g, scattered back by col2im.
template <class T>
void conv2d_backward_data_cpu(const T* w, const T* dy, T* dx, const Geometry& g) {
  std::fill(dx, dx + g.n * g.c * g.h * g.w, T(0));
  std::vector<T> col(static_cast<size_t>(g.rows() * g.pq()));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      gemm<T>(true, false, g.rows(), g.pq(), g.kg(), T(1), w + w_offset(g, grp), g.rows(),
              dy + y_offset(g, n, grp), g.pq(), T(0), col.data(), g.pq());
      col2im(col.data(), g, dx + x_offset(g, n, grp));
    }
}

// dw (K, Cg, R, S) = sum over samples of dy_g (Kg, PQ) col^T (PQ, Cg*R*S), per group.
template <class T>
void conv2d_backward_filter_cpu(const T* x, const T* dy, T* dw, const Geometry& g) {
  std::fill(dw, dw + g.k * g.rows(), T(0));
  std::vector<T> col(static_cast<size_t>(g.rows() * g.pq()));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(x + x_offset(g, n, grp), g, col.data());
      gemm<T>(false, true, g.kg(), g.rows(), g.pq(), T(1), dy + y_offset(g, n, grp), g.pq(),
              col.data(), g.pq(), T(1), dw + w_offset(g, grp), g.rows());
    }
}

// Depthwise convolution (one input channel per group, kg = K / C outputs per channel) as direct
// loops: one tiny GEMM per sample and channel costs far more in call overhead than it computes.
// Output channel k reads input channel k / kg.
template <class T>
void depthwise_forward_cpu(const T* x, const T* w, T* y, const Geometry& g) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t k = 0; k < g.k; ++k) {
      const T* xc = x + (n * g.c + k / g.kg()) * g.h * g.w;
      const T* wk = w + k * g.r * g.s;
      T* yk = y + (n * g.k + k) * g.pq();
      for (int64_t p = 0; p < g.p; ++p)
        for (int64_t q = 0; q < g.q; ++q) {
          T acc = 0;
          for (int64_t r = 0; r < g.r; ++r) {
            const int64_t ih = p * g.stride - g.pad + r;
            if (ih < 0 || ih >= g.h) continue;
            for (int64_t s = 0; s < g.s; ++s) {
              const int64_t iw = q * g.stride - g.pad + s;
              if (iw >= 0 && iw < g.w) acc += xc[ih * g.w + iw] * wk[r * g.s + s];
            }
          }
          yk[p * g.q + q] = acc;
        }
    }
}

// dx[n][c] gathers from the kg output channels of channel c; each (n, c) plane has one writer.
template <class T>
void depthwise_backward_data_cpu(const T* w, const T* dy, T* dx, const Geometry& g) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      T* dxc = dx + (n * g.c + c) * g.h * g.w;
      std::fill(dxc, dxc + g.h * g.w, T(0));
      for (int64_t k = c * g.kg(); k < (c + 1) * g.kg(); ++k) {
        const T* wk = w + k * g.r * g.s;
        const T* dyk = dy + (n * g.k + k) * g.pq();
        for (int64_t p = 0; p < g.p; ++p)
          for (int64_t q = 0; q < g.q; ++q) {
            const T d = dyk[p * g.q + q];
            for (int64_t r = 0; r < g.r; ++r) {
              const int64_t ih = p * g.stride - g.pad + r;
              if (ih < 0 || ih >= g.h) continue;
              for (int64_t s = 0; s < g.s; ++s) {
                const int64_t iw = q * g.stride - g.pad + s;
                if (iw >= 0 && iw < g.w) dxc[ih * g.w + iw] += d * wk[r * g.s + s];
              }
            }
          }
      }
    }
}

// dw[k] sums over samples and positions; each output channel has one writer.
template <class T>
void depthwise_backward_filter_cpu(const T* x, const T* dy, T* dw, const Geometry& g) {
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < g.k; ++k) {
    T* dwk = dw + k * g.r * g.s;
    std::fill(dwk, dwk + g.r * g.s, T(0));
    for (int64_t n = 0; n < g.n; ++n) {
      const T* xc = x + (n * g.c + k / g.kg()) * g.h * g.w;
      const T* dyk = dy + (n * g.k + k) * g.pq();
      for (int64_t r = 0; r < g.r; ++r)
        for (int64_t s = 0; s < g.s; ++s) {
          T acc = 0;
          for (int64_t p = 0; p < g.p; ++p) {
            const int64_t ih = p * g.stride - g.pad + r;
            if (ih < 0 || ih >= g.h) continue;
            for (int64_t q = 0; q < g.q; ++q) {
              const int64_t iw = q * g.stride - g.pad + s;
              if (iw >= 0 && iw < g.w) acc += dyk[p * g.q + q] * xc[ih * g.w + iw];
            }
          }
          dwk[r * g.s + s] += acc;
        }
    }
  }
}

// f32 on the CPU goes to oneDNN unless the reference path is asked for (tests); f64 always runs
// the reference.
bool use_onednn(const Tensor& t) { return t.dtype() == DType::f32 && cpu_fast_path(); }
bool onednn_bf16() { return precision() == Precision::bf16; }
cpu::ConvShape onednn_shape(const Geometry& g, bool x_blocked, bool y_blocked) {
  return {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q, g.stride, g.pad, g.groups, x_blocked, y_blocked};
}

#if SIEVE_WITH_CUDA
// cuDNN describes tensors with 32-bit sizes and strides.
cuda::ConvShape cuda_shape(const Geometry& g) {
  for (int64_t n : {g.n * g.c * g.h * g.w, g.n * g.k * g.pq(), g.k * g.rows()})
    SIEVE_CHECK(n <= INT_MAX, "conv2d: a tensor of ", n, " elements exceeds cuDNN's 32-bit sizes");
  return {int(g.n), int(g.c), int(g.h), int(g.w), int(g.k), int(g.r), int(g.s), int(g.p), int(g.q),
          int(g.stride), int(g.pad), int(g.groups)};
}
#endif

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dParams prm) {
  if (x.blocked() && !use_onednn(x)) return conv2d(to_plain(x), w, bias, prm);
  const Geometry g = geometry(x, w, bias, prm);
  count_flops(2 * g.n * g.k * g.pq() * g.rows());
  // oneDNN computes in the blocked layout: the output stays in it (Tensor::blocked) when the next
  // op can take it, the batch norm that follows every bias-free convolution of the models.
  const bool y_blocked = use_onednn(x) && cpu_blocked_layout() && !bias.defined() &&
                         Tensor::can_block({g.n, g.k, g.p, g.q}, x.dtype(), x.device());
  Tensor y = y_blocked ? Tensor::empty_blocked({g.n, g.k, g.p, g.q})
                       : Tensor::empty({g.n, g.k, g.p, g.q}, x.dtype(), x.device());
  cpu::ConvShape shape = onednn_shape(g, x.blocked(), y_blocked);
  // A shape that Winograd suits computes in f32 Winograd even with bf16 (see winograd_suits).
  shape.winograd = use_onednn(x) && cpu_winograd() && cpu::winograd_suits(shape, onednn_bf16());
  const bool bf16 = onednn_bf16() && !shape.winograd;
  cpu::KeptInput kept_x;  // x in oneDNN's layout, for the backward-weights pass
  if (x.is_cuda()) {
    check_cuda_f32("conv2d", x);
    SIEVE_IF_CUDA(cuda::conv2d_forward(cuda_shape(g), x.data<float>(), w.data<float>(), y.data<float>()));
  } else if (use_onednn(x)) {
    kept_x = cpu::conv2d_forward_onednn(shape, x.elements<float>(), w.data<float>(), y.elements<float>(), bf16,
                                        w.requires_grad() && autograd::needs_grad({&x, &w, &bias}));
  } else {
    dispatch_float("conv2d", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if (g.cg() == 1)
        depthwise_forward_cpu(x.data<T>(), w.data<T>(), y.data<T>(), g);
      else
        conv2d_forward_cpu(x.data<T>(), w.data<T>(), y.data<T>(), g);
    });
  }
  if (bias.defined()) add_channel_bias_(y, bias);

  if (autograd::needs_grad({&x, &w, &bias})) {
    autograd::record(y, {&x, &w, &bias}, [x, w, bias, g, shape, bf16, kept_x](const Tensor& dy_any) {
      // dy handed over in bf16 (accept_bf16_grad below) goes to oneDNN as it is: only the fast
      // path's batch norm hands it so, and only to a bf16 convolution.
      SIEVE_CHECK(dy_any.dtype() != DType::bf16 || (bf16 && cpu_fast_path()),
                  "conv2d backward: a bf16 gradient for a convolution that does not read one");
      const bool fast = use_onednn(dy_any) || dy_any.dtype() == DType::bf16;
      // dy has y's layout; dx gets x's. The other paths read and write plain tensors.
      const Tensor dy = dy_any.relayout(fast && shape.y_blocked);
      Tensor dx = !x.requires_grad() ? Tensor() : fast ? Tensor::empty_like(x) : Tensor::empty(x.shape(), x.dtype(), x.device());
      Tensor dw = w.requires_grad() ? Tensor::empty_like(w) : Tensor();
      auto data_of = [](Tensor& t) { return t.defined() ? t.elements<float>() : nullptr; };
      if (dy.is_cuda()) {
        if (dx.defined()) {
          SIEVE_IF_CUDA(cuda::conv2d_backward_data(cuda_shape(g), w.data<float>(), dy.data<float>(),
                                                   dx.data<float>()));
        }
        if (dw.defined()) {
          SIEVE_IF_CUDA(cuda::conv2d_backward_filter(cuda_shape(g), x.data<float>(), dy.data<float>(),
                                                     dw.data<float>()));
        }
      } else if (fast) {
        const bool handed = dy.dtype() == DType::bf16;
        cpu::conv2d_backward_onednn(shape, x.elements<float>(), kept_x, w.data<float>(),
                                    handed ? nullptr : dy.elements<float>(), data_of(dx), data_of(dw), bf16,
                                    handed ? static_cast<const uint16_t*>(dy.raw()) : nullptr);
      } else {
        const Tensor xp = x.relayout(false);
        dispatch_float("conv2d backward", dy.dtype(), [&](auto tag) {
          using T = decltype(tag);
          const Tensor& x = xp;
          const bool depthwise = g.cg() == 1;
          if (dx.defined() && depthwise) depthwise_backward_data_cpu(w.data<T>(), dy.data<T>(), dx.data<T>(), g);
          if (dx.defined() && !depthwise) conv2d_backward_data_cpu(w.data<T>(), dy.data<T>(), dx.data<T>(), g);
          if (dw.defined() && depthwise) depthwise_backward_filter_cpu(x.data<T>(), dy.data<T>(), dw.data<T>(), g);
          if (dw.defined() && !depthwise) conv2d_backward_filter_cpu(x.data<T>(), dy.data<T>(), dw.data<T>(), g);
        });
      }
      if (dx.defined()) autograd::accumulate_fresh(x, std::move(dx));
      if (dw.defined()) autograd::accumulate_fresh(w, std::move(dw));
      if (bias.requires_grad()) autograd::accumulate(bias, channel_bias_grad(dy));
    });
    // The bf16 passes convert dy to bf16 first; the batch norm that computes it can write it so.
    if (bf16 && use_onednn(x) && cpu_bf16_handoff() &&
        cpu::conv2d_reads_bf16_dy(shape, x.requires_grad(), w.requires_grad()))
      autograd::accept_bf16_grad(y);
  }
  return y;
}

}  // namespace sieve
