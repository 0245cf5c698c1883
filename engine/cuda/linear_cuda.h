// CUDA side of engine/ops/linear (f32): a row-major GEMM through cuBLAS and the per-channel
// bias kernels that conv2d shares. Defined in linear.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// Same contract as sieve::gemm (engine/blas.h), on device pointers, on stream(). TF32 tensor
// cores only when precision() allows them.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// y (outer, channels, inner): y[o, c, i] += bias[c].
void add_channel_bias(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner);
// db[c] = sum over o, i of dy[o, c, i] (a fresh value, not accumulated).
void channel_bias_grad(const float* dy, float* db, int64_t outer, int64_t channels, int64_t inner);

}  // namespace sieve::cuda
