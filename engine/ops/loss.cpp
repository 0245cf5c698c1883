#include "engine/ops/loss.h"

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/ops/argmax_order.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/loss_cuda.h"
#endif

namespace sieve {

namespace {

[[noreturn]] void fail_bad_label(int64_t label, int64_t index, int64_t classes) {
  fail("cross_entropy: label ", label, " at index ", index, " is outside [0, ", classes, ")");
}

// Per row: lse = max + log(sum(exp(x - max))), probs = exp(x - lse), loss = w * (lse - x[label]).
// logits, probs: (N, C); labels, weights (or null), losses: (N,). Labels are already checked.
template <class T>
void cross_entropy_forward_cpu(const T* logits, const int64_t* labels, const T* weights, T* probs,
                               T* losses, int64_t n, int64_t c) {
#pragma omp parallel for if (n * c > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T* x = logits + i * c;
    const T m = *std::max_element(x, x + c);
    T s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(x[j] - m);
    const T lse = m + std::log(s);
    for (int64_t j = 0; j < c; ++j) probs[i * c + j] = std::exp(x[j] - lse);
    losses[i] = (weights ? weights[i] : T(1)) * (lse - x[labels[i]]);
  }
}

// dlogits = (probs - onehot) * w_i * g_i, g_i = grad[i] or grad[0] / N after a mean.
template <class T>
void cross_entropy_backward_cpu(const T* probs, const int64_t* labels, const T* weights,
                                const T* grad, bool mean, T* dlogits, int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    T g = mean ? grad[0] / static_cast<T>(n) : grad[i];
    if (weights) g *= weights[i];
    for (int64_t j = 0; j < c; ++j)
      dlogits[i * c + j] = (probs[i * c + j] - (labels[i] == j ? T(1) : T(0))) * g;
  }
}

#if SIEVE_WITH_CUDA
// Runs the forward kernel, then (outside the sync-free training step and graph capture, whose
// labels were checked on the host) reads back the first bad row, if any.
void cross_entropy_forward_cuda(const Tensor& logits, const Tensor& labels, const Tensor& weights,
                                const Tensor& probs, const Tensor& losses) {
  const int64_t n = logits.dim(0), c = logits.dim(1);
  const Tensor bad_row = Tensor::full({1}, static_cast<double>(n), DType::i64, Device::cuda);
  cuda::cross_entropy_forward(logits.data<float>(), labels.data<int64_t>(),
                              weights.defined() ? weights.data<float>() : nullptr,
                              probs.data<float>(), losses.data<float>(), bad_row.data<int64_t>(), n,
                              c);
  if (host_sync_free() || cuda::stream_capturing()) return;
  const int64_t bad = bad_row.to_vector<int64_t>()[0];
  if (bad < n) fail_bad_label(labels.slice(bad, {1}).to_vector<int64_t>()[0], bad, c);
}
#endif

void check_rows_and_labels(const char* op, const Tensor& x, const Tensor& labels) {
  check_ndim(op, x, "logits", 2);
  check_dtype(op, labels, "labels", DType::i64);
  check_ndim(op, labels, "labels", 1);
  SIEVE_CHECK(labels.dim(0) == x.dim(0), op, ": logits ", shape_str(x.shape()), " and labels ",
              shape_str(labels.shape()), " disagree on the number of rows");
  check_same_device(op, x, labels);
}

// count += number of rows of logits whose argmax equals the label; op names the caller.
void add_correct(const char* op, const Tensor& logits, const Tensor& labels, const Tensor& count) {
  check_rows_and_labels(op, logits, labels);
  check_dtype(op, count, "count", DType::i64);
  SIEVE_CHECK(count.numel() == 1, op, ": count ", shape_str(count.shape()),
              " must have one element");
  check_same_device(op, logits, count);
  const int64_t n = logits.dim(0), c = logits.dim(1);
  SIEVE_CHECK(c > 0, op, ": logits ", shape_str(logits.shape()), " have no columns");
  if (logits.is_cuda()) {
    check_cuda_f32(op, logits);
    SIEVE_IF_CUDA(cuda::argmax_rows(logits.data<float>(), nullptr, labels.data<int64_t>(),
                                    count.data<int64_t>(), n, c));
    return;
  }
  const std::vector<int64_t> predicted = argmax(logits).to_vector<int64_t>();
  const int64_t* lp = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) correct += predicted[i] == lp[i];
  count.data<int64_t>()[0] += correct;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, Reduction reduction,
                     const Tensor& weights) {
  const char* op = "cross_entropy";
  check_rows_and_labels(op, logits, labels);
  const int64_t n = logits.dim(0), c = logits.dim(1);
  SIEVE_CHECK(n > 0 && c > 0, "cross_entropy: logits ", shape_str(logits.shape()), " are empty");
  if (weights.defined()) {
    check_ndim(op, weights, "weights", 1);
    SIEVE_CHECK(weights.dim(0) == n, "cross_entropy: weights ", shape_str(weights.shape()),
                " do not match logits ", shape_str(logits.shape()));
    check_dtype(op, weights, "weights", logits.dtype());
    check_same_device(op, logits, weights);
    SIEVE_CHECK(!autograd::needs_grad({&weights}),
                "cross_entropy: weights are constants, no gradient flows to them; pass a tensor "
                "that does not require grad");
  }
  const bool mean = reduction == Reduction::mean;
  const Tensor probs = Tensor::empty_like(logits);
  const Tensor losses = Tensor::empty({n}, logits.dtype(), logits.device());
  Tensor y = mean ? Tensor::empty({}, logits.dtype(), logits.device()) : losses;
  if (logits.is_cuda()) {
    check_cuda_f32(op, logits);
    SIEVE_IF_CUDA(cross_entropy_forward_cuda(logits, labels, weights, probs, losses));
    if (mean) SIEVE_IF_CUDA(cuda::mean_of(losses.data<float>(), y.data<float>(), n));
  } else {
    const int64_t* lp = labels.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      if (lp[i] < 0 || lp[i] >= c) fail_bad_label(lp[i], i, c);
    dispatch_float(op, logits.dtype(), [&](auto tag) {
      using T = decltype(tag);
      cross_entropy_forward_cpu(logits.data<T>(), lp,
                                weights.defined() ? weights.data<T>() : nullptr, probs.data<T>(),
                                losses.data<T>(), n, c);
      if (mean) {
        const T* l = losses.data<T>();
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += l[i];
        y.data<T>()[0] = static_cast<T>(sum / static_cast<double>(n));
      }
    });
  }
  if (autograd::needs_grad({&logits})) {
    autograd::record(y, {&logits}, [logits, labels, weights, probs, mean, n, c](const Tensor& dy) {
      Tensor dlogits = Tensor::empty_like(probs);
      if (dy.is_cuda()) {
        SIEVE_IF_CUDA(
            cuda::cross_entropy_backward(probs.data<float>(), labels.data<int64_t>(),
                                         weights.defined() ? weights.data<float>() : nullptr,
                                         dy.data<float>(), mean, dlogits.data<float>(), n, c));
      } else {
        dispatch_float("cross_entropy backward", dy.dtype(), [&](auto tag) {
          using T = decltype(tag);
          cross_entropy_backward_cpu(probs.data<T>(), labels.data<int64_t>(),
                                     weights.defined() ? weights.data<T>() : nullptr, dy.data<T>(),
                                     mean, dlogits.data<T>(), n, c);
        });
      }
      autograd::accumulate(logits, dlogits);
    });
  }
  return y;
}

Tensor argmax(const Tensor& x) {
  check_ndim("argmax", x, "x", 2);
  const int64_t n = x.dim(0), c = x.dim(1);
  SIEVE_CHECK(c > 0, "argmax: x ", shape_str(x.shape()), " has no columns");
  Tensor out = Tensor::empty({n}, DType::i64, x.device());
  if (x.is_cuda()) {
    check_cuda_f32("argmax", x);
    SIEVE_IF_CUDA(cuda::argmax_rows(x.data<float>(), out.data<int64_t>(), nullptr, nullptr, n, c));
  } else {
    dispatch_float("argmax", x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xp = x.data<T>();
      int64_t* idx = out.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        const T* row = xp + i * c;
        int64_t best = 0;
        for (int64_t j = 1; j < c; ++j)
          if (argmax_prefers(row[j], j, row[best], best)) best = j;
        idx[i] = best;
      }
    });
  }
  return out;
}

void add_correct_count(const Tensor& logits, const Tensor& labels, const Tensor& count) {
  add_correct("add_correct_count", logits, labels, count);
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const Tensor count = Tensor::zeros({1}, DType::i64, logits.device());
  add_correct("count_correct", logits, labels, count);
  return count.to_vector<int64_t>()[0];
}

}  // namespace sieve
