// Reverse-mode autograd as a graph that lives exactly as long as the tensors that need it: each
// differentiable op, when any input requires grad, gives its output a node holding the backward
// closure and the nodes of its inputs. backward() runs every node reachable from the output,
// later-created first, calling each closure with the gradient of its output; gradients accumulate
// (+=) into inputs, and the graph it ran is freed. A forward whose outputs are dropped without
// backward (an evaluation loop with parameters that require grad) frees its graph with them:
// nothing is kept anywhere else.
#pragma once
#include <cstddef>
#include <functional>
#include <initializer_list>

#include "engine/tensor.h"

namespace sieve::autograd {

bool grad_enabled();

// Within its scope no op is recorded (evaluation, feature extraction, optimiser steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Grad mode is on and at least one input requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Marks `output` as an op result that requires grad and gives it a node with its backward
// closure, which receives d(loss)/d(output), and the nodes of `inputs` (those that are op
// results). The closure may capture the inputs; it must not capture `output` itself (a cycle:
// capture output.view(output.shape()), which shares the data and not the graph).
using BackwardFn = std::function<void(const Tensor& grad_output)>;
void record(const Tensor& output, std::initializer_list<const Tensor*> inputs, BackwardFn backward);

// Seeds d(output) with `seed` (ones for a one-element output when none is given) and runs the
// graph behind output once, freeing it. Gradients of leaves remain in .grad(); those of op
// results live in their nodes only while backward runs.
void backward(const Tensor& output, const Tensor& seed = Tensor());

// t.grad += g when t requires grad (allocates t.grad on first use; never aliases g).
void accumulate(const Tensor& t, const Tensor& g);
// The same for a gradient the caller made for t alone and will not touch again: on first use it
// becomes t.grad without a copy.
void accumulate_fresh(const Tensor& t, Tensor g);

// For an op whose backward reads its output's gradient in bf16 (a bf16 convolution on the CPU):
// marks `output` so that the op producing that gradient may hand it over already rounded to bf16
// (blocked, rounded as oneDNN's conversion rounds), sparing a pass that would write it in f32 and
// convert it. accepts_bf16_grad(t): t's node reads it so, and t has one consumer, the caller,
// whose gradient is all of t's: rounded once, as the node would round it. (A bf16 gradient
// meeting another in accumulation is widened first, exactly.)
void accept_bf16_grad(const Tensor& output);
bool accepts_bf16_grad(const Tensor& t);
// Graph nodes alive in this process (for tests: a loop of forwards must not grow it).
size_t live_nodes();

}  // namespace sieve::autograd
