// argmax's order, shared by the CPU loop and the CUDA warp reduction so both devices pick the
// same column: PyTorch's, where NaN is larger than any number (the first NaN of a row wins) and
// equal values go to the lower column.
#pragma once
#include <cstdint>

#include "engine/rng.h"  // SIEVE_HD

namespace sieve {

// Whether value v at column j beats the current best (best at best_j).
template <class T>
SIEVE_HD bool argmax_prefers(T v, int64_t j, T best, int64_t best_j) {
  const bool v_nan = v != v, best_nan = best != best;
  if (v_nan != best_nan) return v_nan;
  if (!v_nan && v != best) return v > best;
  return j < best_j;
}

}  // namespace sieve
