// CPython's `random` module, bit for bit, for the draws the published studies made with it:
// the Mersenne Twister MT19937 (Matsumoto & Nishimura 1998) seeded as `random.seed(int)` does
// (init_by_array over the integer's 32-bit words, least significant first), `getrandbits`,
// `_randbelow` by rejection, and `random.sample` with both of its algorithms. Python's standard
// library is the oracle: tests/unit/py_random_test.cpp checks against fixtures it wrote.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace sieve {

class PyRandom {
 public:
  // random.seed(seed) for a non-negative integer (Python takes abs() of a negative one).
  explicit PyRandom(uint64_t seed);

  uint32_t next_u32();                  // genrand_uint32
  uint64_t getrandbits(int bits);       // random.getrandbits(bits), 0 <= bits <= 64
  uint64_t randbelow(uint64_t n);       // random._randbelow(n), n >= 1: uniform in [0, n)
  double random();                      // random.random(): 53 bits in [0, 1)

  // random.sample(range(n), k): k distinct values of [0, n) in the order Python draws them.
  // Python picks its algorithm by size: a partial shuffle of a pool when n is at most the
  // size of a set of k items (21, plus 4 ** ceil(log(3k, 4)) when k > 5), else rejection of
  // repeats against a set.
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  void init_genrand(uint32_t s);
  void init_by_array(const std::vector<uint32_t>& key);

  std::array<uint32_t, 624> state_{};
  int index_ = 625;
};

// random.sample's choice: true when it shuffles a pool of n for a sample of k, false when it
// rejects repeats against a set.
bool py_sample_uses_pool(int64_t n, int64_t k);

}  // namespace sieve
