// Counter-based RNG (Philox4x32-10, Salmon et al. 2011). A value depends only on (seed, counter),
// so the CPU and the GPU draw identical streams: element i of a draw uses counter offset + i.
// Header-only and usable from host and device code.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SIEVE_HD __host__ __device__ inline
#else
#define SIEVE_HD inline
#endif

namespace sieve {

struct Philox4 {
  uint32_t v[4];
};

SIEVE_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Ten rounds of Philox-4x32 on counter (ctr, 0) with key = seed.
SIEVE_HD Philox4 philox4x32(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits: exactly representable, identical on CPU and GPU.
SIEVE_HD float philox_uniform(uint64_t seed, uint64_t index) {
  return static_cast<float>(philox4x32(seed, index).v[0] >> 8) * (1.0f / 16777216.0f);
}

// Uniform in [0, 1) in double precision (53 bits), for host-side sampling and shuffles.
SIEVE_HD double philox_uniform_double(uint64_t seed, uint64_t index) {
  const Philox4 r = philox4x32(seed, index);
  const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller on two 32-bit words of one Philox block.
SIEVE_HD double philox_normal(uint64_t seed, uint64_t index) {
  const Philox4 r = philox4x32(seed, index);
  const double u1 = (static_cast<double>(r.v[0]) + 1.0) * (1.0 / 4294967297.0);  // (0, 1)
  const double u2 = static_cast<double>(r.v[1]) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A seeded stream that hands out disjoint counter ranges: draw(n) reserves n counters.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  uint64_t reserve(uint64_t n) {
    const uint64_t start = offset_;
    offset_ += n;
    return start;
  }
  double uniform() { return philox_uniform_double(seed_, reserve(1)); }
  double normal() { return philox_normal(seed_, reserve(1)); }
  // Uniform integer in [0, n) without modulo bias worth caring about (n << 2^53).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>(uniform() * static_cast<double>(n)); }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator used by dropout and initialisers unless one is passed explicitly.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace sieve
