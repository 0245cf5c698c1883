// Trigger kernels: one thread per (indexed image, pixel of the trigger region). Indices are
// distinct (apply_trigger checks), so no two threads touch the same byte.
#include "attacks/trigger_cuda.h"
#include "engine/cuda/context.h"

namespace sieve::cuda {

namespace {

__global__ void patch_kernel(uint8_t* images, int64_t c, int64_t h, int64_t w, const int64_t* indices, int64_t count,
                             int64_t top, int64_t left, int64_t height, int64_t width, const uint8_t* values) {
  const int64_t plane = height * width, region = c * plane, total = count * region;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = o / region, r = o % region;
    const int64_t k = r / plane, y = (r % plane) / width, x = r % width;
    images[((indices[i] * c + k) * h + top + y) * w + left + x] = values[r];
  }
}

__global__ void blend_kernel(uint8_t* images, int64_t image_bytes, const int64_t* indices, int64_t count,
                             const uint8_t* pattern, double alpha) {
  const int64_t total = count * image_bytes;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = o % image_bytes;
    uint8_t* px = images + indices[o / image_bytes] * image_bytes + r;
    *px = blend_pixel(*px, pattern[r], alpha);
  }
}

}  // namespace

void apply_patch(uint8_t* images, int64_t c, int64_t h, int64_t w, const int64_t* indices, int64_t count,
                 int64_t top, int64_t left, int64_t height, int64_t width, const uint8_t* values) {
  const int64_t total = count * c * height * width;
  if (total == 0) return;
  patch_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(images, c, h, w, indices, count, top, left, height,
                                                             width, values);
  SIEVE_KERNEL_CHECK();
}

void apply_blend(uint8_t* images, int64_t image_bytes, const int64_t* indices, int64_t count, const uint8_t* pattern,
                 double alpha) {
  const int64_t total = count * image_bytes;
  if (total == 0) return;
  blend_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(images, image_bytes, indices, count, pattern, alpha);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
