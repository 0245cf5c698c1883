// Elementwise differentiable ops: relu, relu6, add (residual), scalar multiply, reshape/flatten
// and dropout. Each works on CPU (f32, f64) and CUDA (f32).
#pragma once
#include "engine/rng.h"
#include "engine/tensor.h"

namespace sieve {

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);             // min(max(x, 0), 6)
Tensor relu_capped(const Tensor& x, double cap);  // min(max(x, 0), cap): relu (+inf), relu6 (6)
Tensor add(const Tensor& a, const Tensor& b);  // same shape
Tensor add_relu(const Tensor& a, const Tensor& b);  // max(a + b, 0), one pass (residual joins)
Tensor scale(const Tensor& x, double s);   // s * x
Tensor reshape(const Tensor& x, const Shape& shape);
// x in the plain layout (x itself when it is): what an op that does not know the blocked layout
// (Tensor::blocked) takes of its input. Recorded by autograd.
Tensor to_plain(const Tensor& x);
// x in the blocked layout when the CPU fast path would use it (f32 on the CPU, channels a multiple
// of 16, fast path and blocked layout on); else x. Recorded by autograd.
Tensor to_blocked(const Tensor& x);
Tensor flatten(const Tensor& x);           // (N, ...) -> (N, prod(...))

// Inverted dropout: in training, zeroes each element with probability p (Philox draw
// gen.seed() at counter gen.reserve(numel) + i, identical on CPU and GPU) and scales the
// survivors by 1/(1-p); in eval mode returns x. On CUDA, device_offset (a (1,) i64 on the GPU,
// optional) holds the counter instead: the kernel reads it and a second one advances it by
// numel, so a step replayed from a CUDA graph draws new masks (gen's own offset advances too).
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen, const Tensor& device_offset = Tensor());

}  // namespace sieve
