// Fill, dtype conversion and in-place add on the GPU, for Tensor's methods and autograd.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/context.h"
#include "engine/cuda/core_kernels.h"

namespace sieve::cuda {

namespace {

template <class T>
__device__ inline float load_as_float(const T* p, int64_t i) { return static_cast<float>(p[i]); }
template <>
__device__ inline float load_as_float(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
template <>
__device__ inline float load_as_float(const __half* p, int64_t i) { return __half2float(p[i]); }

template <class T>
__device__ inline void store_from_double(T* p, int64_t i, double v) { p[i] = static_cast<T>(v); }
template <>
__device__ inline void store_from_double(__nv_bfloat16* p, int64_t i, double v) {
  p[i] = __float2bfloat16_rn(static_cast<float>(v));
}
template <>
__device__ inline void store_from_double(__half* p, int64_t i, double v) {
  p[i] = __float2half_rn(static_cast<float>(v));
}

__global__ void increment_kernel(int64_t* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += 1;
}

template <class T>
__global__ void fill_kernel(T* dst, int64_t n, double value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_from_double(dst, i, value);
}

// f64 sources keep their precision; every other source goes through float.
template <class S, class D>
__global__ void convert_kernel(const S* src, D* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<S, double> || std::is_integral_v<S>)
      store_from_double(dst, i, static_cast<double>(src[i]));
    else
      store_from_double(dst, i, static_cast<double>(load_as_float(src, i)));
  }
}

__global__ void add_inplace_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

template <class F>
void with_type(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::bf16: f(__nv_bfloat16{}); break;
    case DType::f16: f(__half{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

}  // namespace

void fill(void* dst, DType dtype, int64_t n, double value) {
  if (n == 0) return;
  with_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<T*>(dst), n, value);
  });
  SIEVE_KERNEL_CHECK();
}

void increment(int64_t* dst, int64_t n) {
  if (n == 0) return;
  increment_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst, n);
  SIEVE_KERNEL_CHECK();
}

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (n == 0) return;
  with_type(src_dtype, [&](auto s) {
    with_type(dst_dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      convert_kernel<S, D><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<const S*>(src),
                                                                      static_cast<D*>(dst), n);
    });
  });
  SIEVE_KERNEL_CHECK();
}

void add_inplace(float* dst, const float* src, int64_t n) {
  if (n == 0) return;
  add_inplace_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst, src, n);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
