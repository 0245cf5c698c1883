// Device kernels behind Tensor's own methods (fill, dtype conversion, gradient accumulation).
// Plain declarations so host code compiles without CUDA headers; defined in core_kernels.cu.
#pragma once
#include <cstdint>

#include "engine/dtype.h"

namespace sieve::cuda {

void fill(void* dst, DType dtype, int64_t n, double value);
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);
void add_inplace(float* dst, const float* src, int64_t n);  // dst += src
void increment(int64_t* dst, int64_t n);                   // dst += 1, on the device (no host sync)

}  // namespace sieve::cuda
