// The per-pixel arithmetic of assemble_batch, shared verbatim by the CPU loop and the CUDA kernel.
#pragma once
#include <cstdint>

#include "engine/rng.h"

namespace sieve {

// Crop offsets (dy, dx in [0, 2 * padding]) and flip of one image, from one Philox block.
struct CropFlipBits {
  int dy, dx;
  bool flip;
};

SIEVE_HD CropFlipBits crop_flip_bits(uint64_t seed, uint64_t counter, int padding) {
  const Philox4 r = philox4x32(seed, counter);
  const uint32_t span = static_cast<uint32_t>(2 * padding + 1);
  return {static_cast<int>(r.v[0] % span), static_cast<int>(r.v[1] % span), (r.v[2] & 1u) != 0};
}

// Output pixel (c, y, x) of an image: crop window at (dy - pad, dx - pad) in the zero-padded
// source, then the flip mirrors x; zero padding is a 0 pixel before normalisation.
SIEVE_HD float augmented_pixel(const uint8_t* img, int64_t h, int64_t w, int64_t c, int64_t y, int64_t x,
                               CropFlipBits cf, int padding, bool crop_flip, float mean, float inv_std) {
  int64_t sy = y, sx = x;
  if (crop_flip) {
    if (cf.flip) sx = w - 1 - x;
    sy += cf.dy - padding;
    sx += cf.dx - padding;
  }
  const float v = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? 0.0f : static_cast<float>(img[(c * h + sy) * w + sx]);
  return (v * (1.0f / 255.0f) - mean) * inv_std;
}

}  // namespace sieve
