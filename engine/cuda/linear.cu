// cuBLAS GEMM in row-major terms, and the per-channel bias kernels of linear and conv2d.
#include <climits>

#include "engine/cuda/context.h"
#include "engine/cuda/linear_cuda.h"
#include "engine/device.h"

namespace sieve::cuda {

namespace {

__global__ void add_channel_bias_kernel(float* y, const float* bias, int64_t n, int64_t channels,
                                        int64_t inner) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[(i / inner) % channels];
}

// One block per channel: each thread sums a strided share of the channel's outer * inner values
// (consecutive threads read consecutive i, so loads coalesce when inner is large), then a
// shared-memory tree adds the partial sums in a fixed order, so the result is deterministic.
// blockDim.x must be kThreads (a power of two).
__global__ void channel_bias_grad_kernel(const float* dy, float* db, int64_t outer,
                                         int64_t channels, int64_t inner) {
  __shared__ float partial[kThreads];
  const int64_t c = blockIdx.x;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < outer * inner; j += blockDim.x) {
    const int64_t o = j / inner, i = j - o * inner;
    sum += dy[(o * channels + c) * inner + i];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[c] = partial[0];
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t v : {m, n, k, lda, ldb, ldc})
    SIEVE_CHECK(v <= INT_MAX, "gemm: size ", v, " exceeds cuBLAS's 32-bit interface (m=", m,
                ", n=", n, ", k=", k, ")");
  if (m == 0 || n == 0) return;
  // fp32 keeps exact FMA (cuBLAS's default math uses no TF32), so parity with the CPU holds at
  // fp32 tolerances; the math mode is set per call because the handle is shared.
  SIEVE_CUBLAS_CHECK(cublasSetMathMode(
      cublas(), precision() == Precision::fp32 ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
  // cuBLAS is column-major, and a row-major matrix read column-major is its transpose. The
  // row-major C (m x n) is thus the column-major C^T = op(B)^T op(A)^T: passing B before A, with
  // n and m swapped and each keeping its own transpose flag, yields the row-major product
  // without copying anything.
  SIEVE_CUBLAS_CHECK(cublasSgemm(cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &alpha,
                                 b, int(ldb), a, int(lda), &beta, c, int(ldc)));
}

void add_channel_bias(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  if (n == 0) return;
  add_channel_bias_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(y, bias, n, channels, inner);
  SIEVE_KERNEL_CHECK();
}

void channel_bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner) {
  if (channels == 0) return;
  channel_bias_grad_kernel<<<static_cast<unsigned>(channels), kThreads, 0, stream()>>>(
      dy, db, outer, channels, inner);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
