// All parameters of a model in one flat buffer and all gradients in another, so the optimiser
// is one kernel over contiguous memory and data-parallel training all-reduces one buffer.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace sieve {

// Parameter offsets are multiples of this many elements (64 bytes of f32), for aligned access.
inline constexpr int64_t kParameterAlignment = 16;

struct FlatParameters {
  Tensor values;  // (total,) of the parameters' dtype, back to back (offsets aligned, gaps zero)
  Tensor grads;   // (total,) same dtype and layout
  std::vector<std::string> names;
  std::vector<int64_t> offsets;
  std::vector<Shape> shapes;
};

// Copies the current value of each *param (all f32 on any device, or all f64 on the CPU, for the
// exact checks of the tests) into one flat buffer on `device`
// and re-points *param at its view (Tensor::slice), marked requires_grad, with .grad() set to
// the matching view of `grads` (zeroed). Gradient accumulation then adds straight into the flat
// gradient buffer. Names must be unique and pointers distinct.
FlatParameters flatten_parameters(const std::vector<std::pair<std::string, Tensor*>>& params,
                                  Device device);

}  // namespace sieve
