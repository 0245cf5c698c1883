// Classification loss and accuracy: fused softmax cross-entropy with optional per-sample
// weights, row-wise argmax and the count of correct predictions. CPU (f32, f64) and CUDA (f32).
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace sieve {

enum class Reduction { mean, none };

// logits: (N, C) float; labels: (N,) i64 on the same device; weights: (N,) per-sample loss
// weights of the logits' dtype, or undefined. With l_i = logsumexp(logits_i) - logits_i[label_i]
// (max-subtracted, so huge logits are fine):
//   none -> (N,) losses w_i * l_i;  mean -> scalar (shape {}) sum_i w_i * l_i / N
// (divided by N, not by the sum of the weights). The weights are constants: no gradient flows
// to them. A label outside [0, C) is an error naming the label and its row; on CUDA the check
// runs on the device and is reported after the kernel (one host sync; skipped while the
// stream is being captured into a CUDA graph, where the row's loss becomes NaN instead).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels,
                     Reduction reduction = Reduction::mean, const Tensor& weights = Tensor());

// (N, C) -> (N,) i64, the index of each row's maximum; the first one wins on ties.
Tensor argmax(const Tensor& x);

// Number of rows of logits (N, C) whose argmax equals the label; syncs once on CUDA.
int64_t count_correct(const Tensor& logits, const Tensor& labels);

// count (a one-element i64 tensor on the logits' device) += number of correct rows, without a
// host sync, so a training loop can accumulate accuracy on the device for a whole epoch.
void add_correct_count(const Tensor& logits, const Tensor& labels, const Tensor& count);

}  // namespace sieve
