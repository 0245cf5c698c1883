// Helpers every op uses to pick a backend: CPU kernels are templates over float/double (double
// for gradient checks), CUDA kernels are f32 and exist only in CUDA builds.
#pragma once
#include "engine/error.h"
#include "engine/tensor.h"

#if SIEVE_WITH_CUDA
#define SIEVE_IF_CUDA(...) __VA_ARGS__
#else
#define SIEVE_IF_CUDA(...) ::sieve::fail("sieve was built without CUDA")
#endif

namespace sieve {

// Calls f(float{}) or f(double{}) for the tensor's dtype.
template <class F>
void dispatch_float(const char* op, DType dtype, F&& f) {
  if (dtype == DType::f32)
    f(float{});
  else if (dtype == DType::f64)
    f(double{});
  else
    fail(op, ": dtype ", dtype_name(dtype), " is not supported (f32, or f64 on the CPU)");
}

// CUDA kernels take f32; f64 is a CPU-only type for gradient checks.
inline void check_cuda_f32(const char* op, const Tensor& t) {
  SIEVE_CHECK(t.dtype() == DType::f32, op, ": CUDA path takes f32, got ", dtype_name(t.dtype()));
}

}  // namespace sieve
