// Counts the floating-point operations of the forward passes of convolutions and matrix products
// (2 per multiply-add) while a FlopCount is alive: benchmarks turn images/s into TFLOP/s with it.
#pragma once
#include <cstdint>

namespace sieve {

void count_flops(int64_t flops);  // a no-op unless a FlopCount is alive

class FlopCount {
 public:
  FlopCount();
  ~FlopCount();
  FlopCount(const FlopCount&) = delete;
  FlopCount& operator=(const FlopCount&) = delete;
  int64_t flops() const;
};

}  // namespace sieve
