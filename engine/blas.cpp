#include "engine/blas.h"

#include <cblas.h>

#include <climits>
#include <type_traits>

#include "engine/error.h"

namespace sieve {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  // OpenBLAS takes 32-bit ints for sizes and leading dimensions.
  for (int64_t v : {m, n, k, lda, ldb, ldc})
    SIEVE_CHECK(v <= INT_MAX, "gemm: size ", v, " exceeds the 32-bit BLAS interface (m=", m,
                ", n=", n, ", k=", k, ")");
  if (m == 0 || n == 0) return;  // an empty product; BLAS would reject its leading dimensions
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb),
                beta, c, int(ldc));
  else
    cblas_dgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb),
                beta, c, int(ldc));
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace sieve
