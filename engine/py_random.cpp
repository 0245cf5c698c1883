#include "engine/py_random.h"

#include <bit>
#include <cmath>
#include <unordered_set>

#include "engine/error.h"

namespace sieve {

namespace {
constexpr int kN = 624, kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu, kUpperMask = 0x80000000u, kLowerMask = 0x7fffffffu;
}  // namespace

PyRandom::PyRandom(uint64_t seed) {
  // random_seed() in Modules/_randommodule.c: the integer's 32-bit words, least significant
  // first, at least one word (seed 0 is the key [0]).
  std::vector<uint32_t> key{static_cast<uint32_t>(seed)};
  if (seed >> 32) key.push_back(static_cast<uint32_t>(seed >> 32));
  init_by_array(key);
}

void PyRandom::init_genrand(uint32_t s) {
  state_[0] = s;
  for (int i = 1; i < kN; ++i)
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  index_ = kN;
}

void PyRandom::init_by_array(const std::vector<uint32_t>& key) {
  init_genrand(19650218u);
  const int length = static_cast<int>(key.size());
  int i = 1, j = 0;
  for (int k = std::max(kN, length); k > 0; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
    ++i, ++j;
    if (i >= kN) state_[0] = state_[kN - 1], i = 1;
    if (j >= length) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) state_[0] = state_[kN - 1], i = 1;
  }
  state_[0] = 0x80000000u;  // the most significant bit is 1: a non-zero initial state
}

uint32_t PyRandom::next_u32() {
  if (index_ >= kN) {
    auto twist = [this](int a, int b, int c) {
      const uint32_t y = (state_[a] & kUpperMask) | (state_[b] & kLowerMask);
      state_[a] = state_[c] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
    };
    int k = 0;
    for (; k < kN - kM; ++k) twist(k, k + 1, k + kM);
    for (; k < kN - 1; ++k) twist(k, k + 1, k + (kM - kN));
    twist(kN - 1, 0, kM - 1);
    index_ = 0;
  }
  uint32_t y = state_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t PyRandom::getrandbits(int bits) {
  SIEVE_CHECK(bits >= 0 && bits <= 64, "getrandbits: ", bits, " bits outside [0, 64]");
  if (bits == 0) return 0;
  if (bits <= 32) return next_u32() >> (32 - bits);
  // Words from the least significant up; the last one keeps its most significant bits.
  const uint64_t low = next_u32();
  const uint64_t high = next_u32() >> (64 - bits);
  return low | (high << 32);
}

uint64_t PyRandom::randbelow(uint64_t n) {
  SIEVE_CHECK(n >= 1, "randbelow: n must be >= 1");
  const int bits = std::bit_width(n);
  uint64_t r = getrandbits(bits);
  while (r >= n) r = getrandbits(bits);
  return r;
}

double PyRandom::random() {
  const uint32_t a = next_u32() >> 5, b = next_u32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

bool py_sample_uses_pool(int64_t n, int64_t k) {
  // Lib/random.py: setsize = 21; if k > 5: setsize += 4 ** _ceil(_log(k * 3, 4)); pool if n <= setsize.
  // _log(x, 4) is math.log(x) / math.log(4) in double, as here.
  double setsize = 21;
  if (k > 5) setsize += std::pow(4.0, std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0)));
  return static_cast<double>(n) <= setsize;
}

std::vector<int64_t> PyRandom::sample(int64_t n, int64_t k) {
  SIEVE_CHECK(n >= 0 && k >= 0 && k <= n, "sample: sample larger than population or is negative (k = ", k,
              ", n = ", n, ")");
  std::vector<int64_t> result(static_cast<size_t>(k));
  if (py_sample_uses_pool(n, k)) {
    std::vector<int64_t> pool(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pool[i] = i;
    for (int64_t i = 0; i < k; ++i) {
      const auto j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n - i)));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];  // the unchosen last item moves into the vacancy
    }
  } else {
    std::unordered_set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      auto j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      while (selected.count(j)) j = static_cast<int64_t>(randbelow(static_cast<uint64_t>(n)));
      selected.insert(j);
      result[i] = j;
    }
  }
  return result;
}

}  // namespace sieve
