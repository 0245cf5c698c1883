// The blend arithmetic shared verbatim by the CPU loop and the CUDA kernel, and the trigger
// kernels' launchers (defined in trigger.cu; device pointers, work on sieve::cuda::stream()).
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/rng.h"

namespace sieve {

// round((1 - alpha) * x + alpha * p) in double, halves rounded up, clamped to [0, 255]. The
// device side uses _rn intrinsics, which nvcc never contracts into an FMA, so both sides round
// the same two products and one sum and agree byte for byte (the x86-64 host build does not
// contract either).
SIEVE_HD uint8_t blend_pixel(uint8_t x, uint8_t p, double alpha) {
#if defined(__CUDA_ARCH__)
  const double v = __dadd_rn(__dmul_rn(1.0 - alpha, static_cast<double>(x)), __dmul_rn(alpha, static_cast<double>(p)));
#else
  const double v = (1.0 - alpha) * static_cast<double>(x) + alpha * static_cast<double>(p);
#endif
  const double r = std::floor(v + 0.5);
  return r <= 0.0 ? uint8_t(0) : r >= 255.0 ? uint8_t(255) : static_cast<uint8_t>(r);
}

namespace cuda {

// images: (N, c, h, w) u8; indices: (count,) i64, distinct and in range; values: (c, height,
// width) u8. Writes values into rows [top, top + height) and columns [left, left + width) of
// every indexed image.
void apply_patch(uint8_t* images, int64_t c, int64_t h, int64_t w, const int64_t* indices, int64_t count,
                 int64_t top, int64_t left, int64_t height, int64_t width, const uint8_t* values);
// images: (N, image_bytes) u8; pattern: (image_bytes,) u8. Blends every indexed image in place.
void apply_blend(uint8_t* images, int64_t image_bytes, const int64_t* indices, int64_t count, const uint8_t* pattern,
                 double alpha);

}  // namespace cuda
}  // namespace sieve
