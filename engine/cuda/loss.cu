// Softmax cross-entropy, argmax and correct counts on the GPU. Row kernels give each row to one
// warp (C is 10..1000 here, so a warp's lanes stride across the row) and reduce with shuffles,
// whose fixed order keeps results deterministic. No float atomics anywhere.
#include <cmath>

#include "engine/cuda/context.h"
#include "engine/cuda/loss_cuda.h"
#include "engine/ops/argmax_order.h"

namespace sieve::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = kThreads / kWarp;
constexpr unsigned kFullMask = 0xffffffffu;

// Butterfly reductions: every lane ends with the same value (a + b == b + a exactly).
template <class T>
__device__ T warp_sum(T v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Rows handled by this warp: row = global warp index, then strides of all warps in the grid.
#define SIEVE_WARP_ROW_LOOP(row, n)                                                         \
  for (int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / kWarp; row < (n); \
       row += int64_t(gridDim.x) * kWarpsPerBlock)

__global__ void cross_entropy_forward_kernel(const float* logits, const int64_t* labels,
                                             const float* weights, float* probs, float* losses,
                                             int64_t* bad_row, int64_t n, int64_t c) {
  const int lane = threadIdx.x % kWarp;
  SIEVE_WARP_ROW_LOOP(row, n) {
    const float* x = logits + row * c;
    float m = -INFINITY;
    for (int64_t j = lane; j < c; j += kWarp) m = fmaxf(m, x[j]);
    m = warp_max(m);
    float s = 0.0f;
    for (int64_t j = lane; j < c; j += kWarp) s += expf(x[j] - m);
    const float lse = m + logf(warp_sum(s));
    float* p = probs + row * c;
    for (int64_t j = lane; j < c; j += kWarp) p[j] = expf(x[j] - lse);
    if (lane == 0) {
      const int64_t label = labels[row];
      if (label < 0 || label >= c) {
        atomicMin(reinterpret_cast<long long*>(bad_row), static_cast<long long>(row));
        losses[row] = NAN;
      } else {
        losses[row] = (weights ? weights[row] : 1.0f) * (lse - x[label]);
      }
    }
  }
}

// One block; each thread sums a strided slice in double, then warps and the block combine.
constexpr int kMeanThreads = 1024;
static_assert(kMeanThreads / kWarp == kWarp, "one partial sum per lane of the last warp");

__global__ void mean_kernel(const float* x, float* out, int64_t n) {
  __shared__ double partial[kMeanThreads / kWarp];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  s = warp_sum(s);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) partial[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = warp_sum(partial[lane]);
    if (lane == 0) out[0] = static_cast<float>(s / static_cast<double>(n));
  }
}

__global__ void cross_entropy_backward_kernel(const float* probs, const int64_t* labels,
                                              const float* weights, const float* grad, bool mean,
                                              float* dlogits, int64_t n, int64_t c) {
  const int64_t total = n * c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / c, j = i - row * c;
    float g = mean ? grad[0] / static_cast<float>(n) : grad[row];
    if (weights) g *= weights[row];
    dlogits[i] = (probs[i] - (labels[row] == j ? 1.0f : 0.0f)) * g;
  }
}

__global__ void argmax_rows_kernel(const float* x, int64_t* indices, const int64_t* labels,
                                   unsigned long long* correct, int64_t n, int64_t c) {
  __shared__ unsigned long long block_correct;
  if (threadIdx.x == 0) block_correct = 0;
  __syncthreads();
  const int lane = threadIdx.x % kWarp;
  SIEVE_WARP_ROW_LOOP(row, n) {
    const float* r = x + row * c;
    // Each lane's first maximum over its columns; best_j == c means "none yet".
    float best = -INFINITY;
    int64_t best_j = c;
    for (int64_t j = lane; j < c; j += kWarp) {
      if (best_j == c || argmax_prefers(r[j], j, best, best_j)) {
        best = r[j];
        best_j = j;
      }
    }
    // The row's first maximum, NaN above every number (engine/ops/argmax_order.h).
    for (int o = kWarp / 2; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(kFullMask, best, o);
      const int64_t other_j = __shfl_xor_sync(kFullMask, best_j, o);
      if (other_j != c && (best_j == c || argmax_prefers(other, other_j, best, best_j))) {
        best = other;
        best_j = other_j;
      }
    }
    if (lane == 0) {
      if (indices) indices[row] = best_j;
      if (labels && labels[row] == best_j) atomicAdd(&block_correct, 1ull);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0 && correct && block_correct > 0) atomicAdd(correct, block_correct);
}

}  // namespace

void cross_entropy_forward(const float* logits, const int64_t* labels, const float* weights,
                           float* probs, float* losses, int64_t* bad_row, int64_t n, int64_t c) {
  cross_entropy_forward_kernel<<<blocks_for(n, kWarpsPerBlock), kThreads, 0, stream()>>>(
      logits, labels, weights, probs, losses, bad_row, n, c);
  SIEVE_KERNEL_CHECK();
}

void mean_of(const float* x, float* out, int64_t n) {
  mean_kernel<<<1, kMeanThreads, 0, stream()>>>(x, out, n);
  SIEVE_KERNEL_CHECK();
}

void cross_entropy_backward(const float* probs, const int64_t* labels, const float* weights,
                            const float* grad, bool mean, float* dlogits, int64_t n, int64_t c) {
  cross_entropy_backward_kernel<<<blocks_for(n * c), kThreads, 0, stream()>>>(
      probs, labels, weights, grad, mean, dlogits, n, c);
  SIEVE_KERNEL_CHECK();
}

void argmax_rows(const float* x, int64_t* indices, const int64_t* labels, int64_t* correct,
                 int64_t n, int64_t c) {
  argmax_rows_kernel<<<blocks_for(n, kWarpsPerBlock), kThreads, 0, stream()>>>(
      x, indices, labels, reinterpret_cast<unsigned long long*>(correct), n, c);
  SIEVE_KERNEL_CHECK();
}

bool stream_capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  SIEVE_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace sieve::cuda
