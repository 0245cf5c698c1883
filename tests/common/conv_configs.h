// Convolution configurations shared by the unit tests and the GPU parity tests.
#pragma once
#include <string>

#include "engine/ops/conv2d.h"

namespace sieve::test {

struct ConvConfig {
  const char* name;
  Shape x, w;
  Conv2dParams p;
  bool bias;
};

// Small enough for f64 finite differences, covering stride, padding, groups, depthwise (with a
// channel multiplier too), 1x1 kernels, non-square kernels and odd image sizes.
inline const ConvConfig kSmallConvConfigs[] = {
    {"3x3 pad 1", {2, 3, 7, 5}, {4, 3, 3, 3}, {1, 1, 1}, true},
    {"3x3 stride 2, no bias", {2, 3, 7, 5}, {4, 3, 3, 3}, {2, 0, 1}, false},
    {"groups 2 pad 2", {2, 4, 6, 5}, {6, 2, 3, 3}, {1, 2, 2}, true},
    {"depthwise stride 2", {2, 4, 7, 6}, {4, 1, 3, 3}, {2, 1, 4}, true},
    {"depthwise multiplier 2", {1, 3, 5, 5}, {6, 1, 3, 3}, {1, 1, 3}, false},
    {"1x1", {2, 5, 4, 3}, {3, 5, 1, 1}, {1, 0, 1}, true},
    {"1x1 stride 2 pad 2", {1, 2, 5, 5}, {3, 2, 1, 1}, {2, 2, 1}, true},
    {"3x2 kernel stride 2 pad 1", {1, 2, 6, 7}, {3, 2, 3, 2}, {2, 1, 1}, true},
    {"one input channel", {2, 1, 6, 5}, {3, 1, 3, 3}, {1, 1, 1}, true},
};

inline std::string label(const ConvConfig& c) {
  return cat(c.name, ": x ", shape_str(c.x), " w ", shape_str(c.w));
}

}  // namespace sieve::test
