// Pooling kernels. Forward: one thread per output. Backward: one thread per input element that
// gathers from the (at most ceil(kernel / stride)^2) windows containing it, rather than one
// thread per output scattering with atomicAdd: overlapping windows (kernel 3, stride 2) would
// then add in a run-dependent order, and the gather writes every dx element exactly once, so
// dx needs no zeroing. Max-pool backward recomputes each window's argmax from x.
#include "engine/cuda/context.h"
#include "engine/cuda/pooling_cuda.h"

namespace sieve::cuda {

namespace {

struct PoolGeometry {
  int64_t H, W, Ho, Wo;
  int kernel, stride, padding;
};

// Input rows [h0, h1) and columns [w0, w1) under output (oh, ow), the padding left out.
struct Window {
  int64_t h0, h1, w0, w1;
};

__device__ __forceinline__ Window window_at(const PoolGeometry& g, int64_t oh, int64_t ow) {
  const int64_t hs = oh * g.stride - g.padding, ws = ow * g.stride - g.padding;
  return {hs > 0 ? hs : 0, hs + g.kernel < g.H ? hs + g.kernel : g.H, ws > 0 ? ws : 0,
          ws + g.kernel < g.W ? ws + g.kernel : g.W};
}

// First output index (along one axis) whose window contains input index i, and the last
// (clamped to the output extent; the range is empty when first > last).
__device__ __forceinline__ int64_t first_window(int64_t i, const PoolGeometry& g) {
  return i + g.padding < g.kernel ? 0 : (i + g.padding - g.kernel) / g.stride + 1;
}
__device__ __forceinline__ int64_t last_window(int64_t i, int64_t out, const PoolGeometry& g) {
  const int64_t last = (i + g.padding) / g.stride;
  return last < out - 1 ? last : out - 1;
}

// Same rule as the CPU reference: first maximum in row-major order, a NaN wins.
__device__ int64_t window_argmax(const float* plane, int64_t W, const Window& w) {
  int64_t best = w.h0 * W + w.w0;
  float best_v = plane[best];
  for (int64_t h = w.h0; h < w.h1; ++h)
    for (int64_t c = w.w0; c < w.w1; ++c) {
      const float v = plane[h * W + c];
      if (v > best_v || isnan(v)) {
        best_v = v;
        best = h * W + c;
      }
    }
  return best;
}

__global__ void max_pool_forward_kernel(const float* x, float* y, int64_t n, PoolGeometry g) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n;
       o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = o % g.Wo, oh = o / g.Wo % g.Ho, p = o / (g.Wo * g.Ho);
    const float* plane = x + p * g.H * g.W;
    y[o] = plane[window_argmax(plane, g.W, window_at(g, oh, ow))];
  }
}

__global__ void avg_pool_forward_kernel(const float* x, float* y, int64_t n, PoolGeometry g) {
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < n;
       o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ow = o % g.Wo, oh = o / g.Wo % g.Ho, p = o / (g.Wo * g.Ho);
    const float* plane = x + p * g.H * g.W;
    const Window w = window_at(g, oh, ow);
    float sum = 0.0f;
    for (int64_t h = w.h0; h < w.h1; ++h)
      for (int64_t c = w.w0; c < w.w1; ++c) sum += plane[h * g.W + c];
    y[o] = sum * inv_area;
  }
}

// n = planes * H * W threads' worth of input elements; each sums dy over the windows containing
// it (in a fixed order), counting a window for max pooling only when the element is its argmax.
template <bool kMax>
__global__ void pool_backward_kernel(const float* x, const float* dy, float* dx, int64_t n,
                                     PoolGeometry g) {
  const float inv_area = 1.0f / static_cast<float>(g.kernel * g.kernel);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = i % g.W, ih = i / g.W % g.H, p = i / (g.W * g.H);
    const float* plane = kMax ? x + p * g.H * g.W : nullptr;
    const float* dplane = dy + p * g.Ho * g.Wo;
    float sum = 0.0f;
    for (int64_t oh = first_window(ih, g), oh_end = last_window(ih, g.Ho, g); oh <= oh_end; ++oh)
      for (int64_t ow = first_window(iw, g), ow_end = last_window(iw, g.Wo, g); ow <= ow_end; ++ow)
        if (!kMax || window_argmax(plane, g.W, window_at(g, oh, ow)) == ih * g.W + iw)
          sum += dplane[oh * g.Wo + ow];
    dx[i] = kMax ? sum : sum * inv_area;
  }
}

// One warp per plane (coalesced reads, shuffle reduction in a fixed order); the loop over planes
// is warp-uniform, so every lane takes part in each shuffle.
__global__ void global_avg_pool_forward_kernel(const float* x, float* y, int64_t planes,
                                               int64_t HW) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t p = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; p < planes; p += warps) {
    float sum = 0.0f;
    for (int64_t i = lane; i < HW; i += 32) sum += x[p * HW + i];
    for (int offset = 16; offset > 0; offset /= 2)
      sum += __shfl_down_sync(0xffffffffu, sum, offset);
    if (lane == 0) y[p] = sum / static_cast<float>(HW);
  }
}

__global__ void global_avg_pool_backward_kernel(const float* dy, float* dx, int64_t n, int64_t HW) {
  const float inv_hw = 1.0f / static_cast<float>(HW);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = dy[i / HW] * inv_hw;
}

}  // namespace

void max_pool2d_forward(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t Ho,
                        int64_t Wo, int kernel, int stride, int padding) {
  const int64_t n = planes * Ho * Wo;
  max_pool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      x, y, n, {H, W, Ho, Wo, kernel, stride, padding});
  SIEVE_KERNEL_CHECK();
}

void max_pool2d_backward(const float* x, const float* dy, float* dx, int64_t planes, int64_t H,
                         int64_t W, int64_t Ho, int64_t Wo, int kernel, int stride, int padding) {
  const int64_t n = planes * H * W;
  pool_backward_kernel<true><<<blocks_for(n), kThreads, 0, stream()>>>(
      x, dy, dx, n, {H, W, Ho, Wo, kernel, stride, padding});
  SIEVE_KERNEL_CHECK();
}

void avg_pool2d_forward(const float* x, float* y, int64_t planes, int64_t H, int64_t W, int64_t Ho,
                        int64_t Wo, int kernel, int stride, int padding) {
  const int64_t n = planes * Ho * Wo;
  avg_pool_forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      x, y, n, {H, W, Ho, Wo, kernel, stride, padding});
  SIEVE_KERNEL_CHECK();
}

void avg_pool2d_backward(const float* dy, float* dx, int64_t planes, int64_t H, int64_t W,
                         int64_t Ho, int64_t Wo, int kernel, int stride, int padding) {
  const int64_t n = planes * H * W;
  pool_backward_kernel<false><<<blocks_for(n), kThreads, 0, stream()>>>(
      nullptr, dy, dx, n, {H, W, Ho, Wo, kernel, stride, padding});
  SIEVE_KERNEL_CHECK();
}

void global_avg_pool_forward(const float* x, float* y, int64_t planes, int64_t HW) {
  global_avg_pool_forward_kernel<<<blocks_for(planes * 32), kThreads, 0, stream()>>>(x, y, planes,
                                                                                     HW);
  SIEVE_KERNEL_CHECK();
}

void global_avg_pool_backward(const float* dy, float* dx, int64_t planes, int64_t HW) {
  const int64_t n = planes * HW;
  global_avg_pool_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dy, dx, n, HW);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
