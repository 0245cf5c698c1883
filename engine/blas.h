// Row-major matrix product on the CPU through OpenBLAS: the one GEMM behind the CPU reference
// of conv2d (im2col) and linear. A template over float/double so f64 gradient checks run the
// same code as f32 training.
#pragma once
#include <cstdint>

namespace sieve {

// c (m x n) = alpha * op(a) op(b) + beta * c, all row-major with leading dimensions lda, ldb,
// ldc; op(a) (m x k) is a or its transpose, op(b) (k x n) likewise. Instantiated for float
// (cblas_sgemm) and double (cblas_dgemm).
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace sieve
