// CUDA kernel of engine/sgd (f32). Defined in sgd.cu.
#pragma once
#include <cstdint>

#include "engine/sgd.h"

namespace sieve::cuda {

// One fused pass of sgd_update over n elements: values and momentum_buffer (null without
// momentum) updated in place; mask null means no mask; lr points to one float on the device;
// while *halt (when not null) is non-zero nothing changes.
void sgd_step(float* values, const float* grads, float* momentum_buffer, const float* mask,
              const float* lr, const int64_t* halt, int64_t n, const SgdCoefficients& k);

}  // namespace sieve::cuda
