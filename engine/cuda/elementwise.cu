// Elementwise kernels: grid-stride loops, one element per thread per step.
#include "engine/cuda/context.h"
#include "engine/cuda/elementwise_cuda.h"
#include "engine/rng.h"

namespace sieve::cuda {

namespace {

#define SIEVE_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void clamp_forward_kernel(const float* x, float* y, int64_t n, float cap) {
  // NaN stays NaN, as on the CPU and in PyTorch (fmaxf alone would turn it into 0 and hide a
  // diverging run from the non-finite-loss check).
  SIEVE_GRID_LOOP(i, n) {
    const float v = x[i];
    y[i] = v != v ? v : fminf(fmaxf(v, 0.0f), cap);
  }
}

__global__ void clamp_backward_kernel(const float* y, const float* dy, float* dx, int64_t n, float cap) {
  // cap = +inf is ReLU: +inf passes its gradient (PyTorch's threshold_backward), as on the CPU.
  const bool capped = !isinf(cap);
  SIEVE_GRID_LOOP(i, n) dx[i] = (y[i] > 0.0f && (!capped || y[i] < cap)) ? dy[i] : 0.0f;
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  SIEVE_GRID_LOOP(i, n) y[i] = a[i] + b[i];
}

__global__ void scale_kernel(const float* x, float s, float* y, int64_t n) {
  SIEVE_GRID_LOOP(i, n) y[i] = s * x[i];
}

__global__ void mul_kernel(const float* a, const float* b, float* y, int64_t n) {
  SIEVE_GRID_LOOP(i, n) y[i] = a[i] * b[i];
}

__global__ void dropout_kernel(const float* x, float* y, float* mask, int64_t n, float p,
                               uint64_t seed, uint64_t host_offset, const int64_t* device_offset) {
  const float keep_scale = 1.0f / (1.0f - p);
  const uint64_t offset = device_offset ? static_cast<uint64_t>(*device_offset) : host_offset;
  SIEVE_GRID_LOOP(i, n) {
    const float m = philox_uniform(seed, offset + i) >= p ? keep_scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

__global__ void advance_offset_kernel(int64_t* offset, int64_t n) { *offset += n; }

}  // namespace

void clamp_forward(const float* x, float* y, int64_t n, float cap) {
  clamp_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, y, n, cap);
  SIEVE_KERNEL_CHECK();
}

void clamp_backward(const float* y, const float* dy, float* dx, int64_t n, float cap) {
  clamp_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(y, dy, dx, n, cap);
  SIEVE_KERNEL_CHECK();
}

void add(const float* a, const float* b, float* y, int64_t n) {
  add_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a, b, y, n);
  SIEVE_KERNEL_CHECK();
}

void scale(const float* x, float s, float* y, int64_t n) {
  scale_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, s, y, n);
  SIEVE_KERNEL_CHECK();
}

void mul(const float* a, const float* b, float* y, int64_t n) {
  mul_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a, b, y, n);
  SIEVE_KERNEL_CHECK();
}

void dropout_forward(const float* x, float* y, float* mask, int64_t n, float p, uint64_t seed,
                     uint64_t offset, int64_t* device_offset) {
  dropout_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, y, mask, n, p, seed, offset, device_offset);
  SIEVE_KERNEL_CHECK();
  if (device_offset) {  // after every block has read it
    advance_offset_kernel<<<1, 1, 0, stream()>>>(device_offset, n);
    SIEVE_KERNEL_CHECK();
  }
}

}  // namespace sieve::cuda
