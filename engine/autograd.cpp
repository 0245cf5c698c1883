#include "engine/autograd.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <unordered_set>
#include <vector>

#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/core_kernels.h"
#endif

namespace sieve::autograd {

std::atomic<size_t> g_live_nodes{0};

struct Node {
  uint64_t sequence;                          // creation order: consumers are created after producers
  BackwardFn backward;                        // emptied once run
  std::vector<std::shared_ptr<Node>> inputs;  // the nodes of the inputs that are op results
  Tensor grad;                                // d(loss)/d(output), gathered while backward runs
  bool bf16_grad = false;                     // backward reads grad in bf16 (accept_bf16_grad)
  int consumers = 0;                          // recorded ops taking the output as an input

  Node() { ++g_live_nodes; }
  ~Node() { --g_live_nodes; }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
};

namespace {

thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};

// slot += src, elementwise, same shape, dtype and device. A leaf's .grad is added into in place
// (it may be a view of the flat gradient buffer the optimiser reads, engine/parameters.h). An op
// result's gradient may share its storage (accumulate hands gradients on uncopied): in place when
// it owns its storage, else into a new tensor, copy on write.
// A bf16 gradient (accept_bf16_grad) widened to f32, in its layout; any other unchanged.
Tensor widened(const Tensor& t) {
  if (t.dtype() != DType::bf16) return t;
  Tensor w = t.blocked() ? Tensor::empty_blocked(t.shape()) : Tensor::empty(t.shape(), DType::f32, t.device());
  const auto* src = static_cast<const uint16_t*>(t.raw());  // bf16 bits
  float* dst = w.elements<float>();
  const int64_t n = t.numel();
#pragma omp parallel for if (n >= (1 << 15))
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  return w;
}

void add_into(Tensor& slot, const Tensor& src_any, bool leaf) {
  slot = widened(slot);  // a bf16 gradient is only ever an op result's, never a leaf's
  const Tensor src = widened(src_any);
  check_same_shape("gradient accumulation", slot, "grad", src, "incoming");
  SIEVE_CHECK(slot.blocked() == src.blocked(), "gradient accumulation: layouts differ");
  check_same_device("gradient accumulation", slot, src);
  const int64_t n = slot.numel();
  if (slot.is_cuda()) {
    check_cuda_f32("gradient accumulation", slot);
    if (!leaf && !slot.owns_storage()) slot = slot.clone();
    SIEVE_IF_CUDA(cuda::add_inplace(slot.data<float>(), src.data<float>(), n));
    return;
  }
  Tensor dst = leaf || slot.owns_storage() ? slot : Tensor::empty_like(slot);
  dispatch_float("gradient accumulation", slot.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = dst.elements<T>();
    const T* a = slot.elements<T>();
    const T* s = src.elements<T>();
#pragma omp parallel for simd if (n >= (1 << 15))
    for (int64_t i = 0; i < n; ++i) d[i] = a[i] + s[i];
  });
  slot = std::move(dst);
}

// Where t's gradient goes: its node for an op result, its .grad for a leaf.
Tensor& grad_slot(const Tensor& t) {
  AutogradMeta& m = t.meta();
  return m.grad_fn ? m.grad_fn->grad : m.grad;
}

void check_grad_shape(const Tensor& t, const Tensor& g) {
  check_same_shape("gradient accumulation", t, "tensor", g, "gradient");
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

void record(const Tensor& output, std::initializer_list<const Tensor*> inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->sequence = g_sequence++;
  node->backward = std::move(backward);
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad() && t->meta().grad_fn) {
      node->inputs.push_back(t->meta().grad_fn);
      ++t->meta().grad_fn->consumers;
    }
  AutogradMeta& m = output.meta();
  m.requires_grad = true;
  m.is_leaf = false;
  m.grad_fn = std::move(node);
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
  const std::shared_ptr<Node> root = output.meta().grad_fn;
  if (!root) {  // a leaf: its own gradient
    accumulate(output, s);
    return;
  }
  // Every node reachable from the root, then the latest-created first: a node's gradient is
  // complete once every node created after it (all its consumers) has run.
  std::vector<std::shared_ptr<Node>> order{root};
  std::unordered_set<const Node*> seen{root.get()};
  for (size_t i = 0; i < order.size(); ++i) {
    SIEVE_CHECK(order[i]->backward != nullptr, "backward: this graph (or a part it shares with an earlier "
                "backward) has already been run and freed; compute the output again");
    for (const std::shared_ptr<Node>& in : order[i]->inputs)
      if (seen.insert(in.get()).second) order.push_back(in);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a->sequence > b->sequence; });

  accumulate(output, s);
  NoGradGuard no_grad;  // backward closures are not themselves recorded
  for (const std::shared_ptr<Node>& node : order) {
    const Tensor g = std::move(node->grad);
    node->grad = Tensor();
    if (g.defined() && node->backward) node->backward(g);
    // Freed as it runs: the closure's saved tensors, and the edges to its inputs.
    node->backward = nullptr;
    node->inputs.clear();
  }
}

void accumulate(const Tensor& t, const Tensor& g_any) {
  if (!t.defined() || !t.requires_grad()) return;
  const Tensor g = g_any.relayout(t.blocked());  // a gradient has its tensor's layout
  Tensor& slot = grad_slot(t);
  const bool leaf = !t.meta().grad_fn;
  if (slot.defined()) {
    add_into(slot, g, leaf);
  } else {
    check_grad_shape(t, g);
    // An op result's gradient is read by its node's backward and accumulated into, never
    // written otherwise: it takes g uncopied, and add_into copies on write while g is shared (a
    // sum's gradient handed to both inputs). A leaf's .grad is the user's (optimisers update it
    // in place): it gets its own copy.
    slot = leaf ? g.clone() : g;
  }
}

void accumulate_fresh(const Tensor& t, Tensor g) {
  if (!t.defined() || !t.requires_grad()) return;
  g = g.relayout(t.blocked());  // a gradient has its tensor's layout
  Tensor& slot = grad_slot(t);
  if (slot.defined()) {
    add_into(slot, g, !t.meta().grad_fn);
  } else {
    check_grad_shape(t, g);
    slot = std::move(g);
  }
}

void accept_bf16_grad(const Tensor& output) {
  SIEVE_CHECK(output.meta().grad_fn, "accept_bf16_grad: the tensor is not an op result");
  output.meta().grad_fn->bf16_grad = true;
}

bool accepts_bf16_grad(const Tensor& t) {
  // Only as its whole gradient: one consumer and nothing gathered yet (not the seed), so that
  // the gradient is rounded once, where the node itself would round it.
  const std::shared_ptr<Node>& node = t.meta().grad_fn;
  return node && node->bf16_grad && node->consumers == 1 && !node->grad.defined();
}

size_t live_nodes() { return g_live_nodes; }

}  // namespace sieve::autograd
