// CUDA-side context: one stream, library handles created once on first use, and the checking
// macros every CUDA / cuBLAS / cuDNN / cuSOLVER call goes through (file:line + library message).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cusolverDn.h>

#include "engine/error.h"

namespace sieve::cuda {

cudaStream_t stream();
cublasHandle_t cublas();
cudnnHandle_t cudnn();
cusolverDnHandle_t cusolver();

const char* cublas_status_string(cublasStatus_t s);
const char* cusolver_status_string(cusolverStatus_t s);

// Launch geometry for a flat loop over n elements.
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

}  // namespace sieve::cuda

#define SIEVE_CUDA_CHECK(expr)                                                               \
  do {                                                                                       \
    cudaError_t sieve_err_ = (expr);                                                         \
    if (sieve_err_ != cudaSuccess)                                                           \
      ::sieve::fail("CUDA error at ", __FILE__, ":", __LINE__, ": ", #expr, ": ",            \
                    cudaGetErrorString(sieve_err_));                                         \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define SIEVE_KERNEL_CHECK() SIEVE_CUDA_CHECK(cudaGetLastError())

#define SIEVE_CUBLAS_CHECK(expr)                                                             \
  do {                                                                                       \
    cublasStatus_t sieve_st_ = (expr);                                                       \
    if (sieve_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::sieve::fail("cuBLAS error at ", __FILE__, ":", __LINE__, ": ", #expr, ": ",          \
                    ::sieve::cuda::cublas_status_string(sieve_st_));                         \
  } while (0)

#define SIEVE_CUDNN_CHECK(expr)                                                              \
  do {                                                                                       \
    cudnnStatus_t sieve_st_ = (expr);                                                        \
    if (sieve_st_ != CUDNN_STATUS_SUCCESS)                                                   \
      ::sieve::fail("cuDNN error at ", __FILE__, ":", __LINE__, ": ", #expr, ": ",           \
                    cudnnGetErrorString(sieve_st_));                                         \
  } while (0)

#define SIEVE_CUSOLVER_CHECK(expr)                                                           \
  do {                                                                                       \
    cusolverStatus_t sieve_st_ = (expr);                                                     \
    if (sieve_st_ != CUSOLVER_STATUS_SUCCESS)                                                \
      ::sieve::fail("cuSOLVER error at ", __FILE__, ":", __LINE__, ": ", #expr, ": ",        \
                    ::sieve::cuda::cusolver_status_string(sieve_st_));                       \
  } while (0)
