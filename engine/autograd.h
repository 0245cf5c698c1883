// Reverse-mode autograd as a tape: each differentiable op, when any input requires grad, appends
// its output and a backward closure; backward() walks the tape in reverse, calling each closure
// with the gradient of its output, and clears the tape. Gradients accumulate (+=) into inputs.
#pragma once
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

// Marks `output` as an op result that requires grad and records its backward closure,
// which receives d(loss)/d(output).
using BackwardFn = std::function<void(const Tensor& grad_output)>;
void record(const Tensor& output, BackwardFn backward);

// Seeds d(output) with `seed` (ones for a one-element output when none is given), runs the tape
// in reverse and clears it. Gradients of leaves remain in .grad(); those of intermediates are freed.
void backward(const Tensor& output, const Tensor& seed = Tensor());

// t.grad += g when t requires grad (allocates t.grad on first use; never aliases g).
void accumulate(const Tensor& t, const Tensor& g);
// The same for a gradient the caller made for t alone and will not touch again: on first use it
// becomes t.grad without a copy.
void accumulate_fresh(const Tensor& t, Tensor g);

size_t tape_size();
void clear_tape();

}  // namespace sieve::autograd
