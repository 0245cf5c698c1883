#include "engine/autograd.h"

#include <vector>

#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/core_kernels.h"
#endif

namespace sieve::autograd {

namespace {

struct TapeEntry {
  Tensor output;
  BackwardFn backward;
};

thread_local std::vector<TapeEntry> g_tape;
thread_local bool g_grad_enabled = true;

// dst += src, elementwise, same shape, dtype and device.
void add_into(const Tensor& dst, const Tensor& src) {
  check_same_shape("gradient accumulation", dst, "grad", src, "incoming");
  check_same_device("gradient accumulation", dst, src);
  const int64_t n = dst.numel();
  if (dst.is_cuda()) {
    check_cuda_f32("gradient accumulation", dst);
    SIEVE_IF_CUDA(cuda::add_inplace(dst.data<float>(), src.data<float>(), n));
    return;
  }
  dispatch_float("gradient accumulation", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = dst.data<T>();
    const T* s = src.data<T>();
#pragma omp parallel for simd if (n >= (1 << 15))
    for (int64_t i = 0; i < n; ++i) d[i] += s[i];
  });
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(const Tensor& output, BackwardFn backward) {
  AutogradMeta& m = output.meta();
  m.requires_grad = true;
  m.is_leaf = false;
  g_tape.push_back({output, std::move(backward)});
}

void backward(const Tensor& output, const Tensor& seed) {
  SIEVE_CHECK(output.requires_grad(), "backward: the output does not require grad (no op on a "
              "parameter was recorded, or it was computed under NoGradGuard)");
  Tensor s = seed;
  if (!s.defined()) {
    SIEVE_CHECK(output.numel() == 1, "backward: output of shape ", shape_str(output.shape()),
                " needs an explicit seed gradient");
    s = Tensor::full(output.shape(), 1.0, output.dtype(), output.device());
  }
  check_same_shape("backward", output, "output", s, "seed");
  accumulate(output, s);

  NoGradGuard no_grad;  // backward closures are not themselves recorded
  std::vector<TapeEntry> tape;
  tape.swap(g_tape);
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
    const Tensor& g = it->output.grad();
    if (g.defined()) it->backward(g);
    if (!it->output.is_leaf()) it->output.set_grad(Tensor());
  }
}

void accumulate(const Tensor& t, const Tensor& g) {
  if (!t.defined() || !t.requires_grad()) return;
  const Tensor& current = t.grad();
  if (current.defined())
    add_into(current, g);
  else
    t.set_grad(g.clone());
}

void accumulate_fresh(const Tensor& t, Tensor g) {
  if (!t.defined() || !t.requires_grad()) return;
  const Tensor& current = t.grad();
  if (current.defined())
    add_into(current, g);
  else
    t.set_grad(std::move(g));
}

size_t tape_size() { return g_tape.size(); }
void clear_tape() { g_tape.clear(); }

}  // namespace sieve::autograd
