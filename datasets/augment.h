// Batch assembly: gather images by index from the u8 store, optionally random-crop (zero padding)
// and horizontally flip them, and normalise to f32 (B, C, H, W). One fused pass, the same on CPU
// and GPU: image b's crop offsets and flip come from Philox(seed, counter + b), so a batch is
// bit-identical on both devices and reproducible from (seed, counter).
#pragma once
#include <array>
#include <cstdint>

#include "engine/tensor.h"

namespace sieve {

struct AugmentParams {
  bool crop_flip = false;  // RandomCrop(H, padding) + RandomHorizontalFlip(0.5), as torchvision
  int padding = 4;
  uint64_t seed = 0;
  uint64_t counter = 0;  // Philox counter of the batch's first image
  std::array<float, 3> mean{}, std{};
};

// images: (N, C, H, W) u8 on the CPU or the GPU; indices: (B,) i64 on the same device.
// Returns (B, C, H, W) f32 on that device.
Tensor assemble_batch(const Tensor& images, const Tensor& indices, const AugmentParams& params);

// The CUDA training step's variant, which never waits for the GPU: the indices were checked on
// the host before they went up (the trainer checks its epoch order once per epoch), and the
// Philox counter of the batch's first image is read from device memory (counter: (1,) i64 on
// the GPU; params.counter is unused), so a step replayed from a CUDA graph draws new crops.
Tensor assemble_staged_batch(const Tensor& images, const Tensor& indices, const Tensor& counter,
                             const AugmentParams& params);

}  // namespace sieve
