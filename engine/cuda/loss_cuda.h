// CUDA kernels of engine/ops/loss (f32, labels i64). Defined in loss.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// logits (n, c), labels (n,), weights (n,) or null. Writes probs (n, c) = softmax(logits) and
// losses (n,) = w_i * (logsumexp(logits_i) - logits_i[label_i]). A row whose label is outside
// [0, c) gets a NaN loss and lowers *bad_row (set to n by the caller) to its index.
void cross_entropy_forward(const float* logits, const int64_t* labels, const float* weights,
                           float* probs, float* losses, int64_t* bad_row, int64_t n, int64_t c);

// out[0] = sum(x) / n, summed in a fixed order so repeated runs agree bit for bit.
void mean_of(const float* x, float* out, int64_t n);

// dlogits (n, c) = (probs - onehot(labels)) * w_i * g_i with g_i = grad[i], or grad[0] / n
// when the forward took the mean.
void cross_entropy_backward(const float* probs, const int64_t* labels, const float* weights,
                            const float* grad, bool mean, float* dlogits, int64_t n, int64_t c);

// Row-wise argmax of x (n, c), first maximum on ties. Writes indices (n,) when non-null; when
// labels is non-null adds the number of rows whose argmax equals the label to *correct.
void argmax_rows(const float* x, int64_t* indices, const int64_t* labels, int64_t* correct,
                 int64_t n, int64_t c);

// True while sieve's stream is being captured into a CUDA graph (no host reads allowed then).
bool stream_capturing();

}  // namespace sieve::cuda
