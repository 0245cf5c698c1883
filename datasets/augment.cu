// Fused gather + random crop + flip + normalise: one thread per output pixel.
#include "datasets/augment.h"
#include "datasets/augment_kernel.h"
#include "engine/cuda/context.h"

namespace sieve::cuda {

namespace {

struct Norm {
  float mean[3], inv_std[3];
};

__global__ void assemble_batch_kernel(const uint8_t* images, int64_t c, int64_t h, int64_t w,
                                      const int64_t* indices, int64_t b, bool crop_flip, int padding,
                                      uint64_t seed, uint64_t host_counter, const int64_t* device_counter,
                                      Norm norm, float* out) {
  const int64_t total = b * c * h * w;
  const uint64_t counter = device_counter ? static_cast<uint64_t>(*device_counter) : host_counter;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = o % w, y = (o / w) % h, k = (o / (w * h)) % c, i = o / (w * h * c);
    const CropFlipBits cf = crop_flip_bits(seed, counter + static_cast<uint64_t>(i), padding);
    out[o] = augmented_pixel(images + indices[i] * c * h * w, h, w, k, y, x, cf, padding, crop_flip,
                             norm.mean[k], norm.inv_std[k]);
  }
}

}  // namespace

void assemble_batch(const uint8_t* images, int64_t c, int64_t h, int64_t w, const int64_t* indices, int64_t b,
                    const AugmentParams& p, const int64_t* counter, float* out) {
  Norm norm{};
  for (int k = 0; k < 3; ++k) norm.mean[k] = p.mean[k], norm.inv_std[k] = 1.0f / p.std[k];
  const int64_t total = b * c * h * w;
  if (total == 0) return;
  assemble_batch_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(images, c, h, w, indices, b, p.crop_flip,
                                                                       p.padding, p.seed, p.counter, counter, norm, out);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
