// CUDA kernels of engine/ops/elementwise (f32). Defined in elementwise.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// y = clamp(x, 0, cap); cap = +inf for relu, 6 for relu6.
void clamp_forward(const float* x, float* y, int64_t n, float cap);
// dx = dy where 0 < y < cap, else 0 (PyTorch's threshold/hardtanh backward).
void clamp_backward(const float* y, const float* dy, float* dx, int64_t n, float cap);
void add(const float* a, const float* b, float* y, int64_t n);
void scale(const float* x, float s, float* y, int64_t n);
void mul(const float* a, const float* b, float* y, int64_t n);
// mask[i] = (u_i >= p) / (1 - p) with u_i = philox_uniform(seed, offset + i); y = x * mask.
// With device_offset (not null) the offset is *device_offset, which then advances by n.
void dropout_forward(const float* x, float* y, float* mask, int64_t n, float p, uint64_t seed,
                     uint64_t offset, int64_t* device_offset);

}  // namespace sieve::cuda
