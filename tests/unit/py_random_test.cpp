// engine/py_random.h against CPython's own `random` module: tests/golden/make_py_random_fixture.py
// (standard library only) recorded raw words, getrandbits, _randbelow, random() and
// random.sample over both of its algorithms, and study 1's draws for its published seeds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/io.h"
#include "engine/error.h"
#include "engine/py_random.h"

using namespace sieve;
using nlohmann::json;

namespace {

const json& fixture() {
  static const json j = json::parse(read_file(std::string(SIEVE_SOURCE_DIR) + "/tests/golden/fixtures/py_random.json"));
  return j;
}

uint64_t seed_of(const json& s) { return std::stoull(s.get<std::string>()); }

// make_py_random_fixture.py: list_hash.
uint64_t list_hash(const std::vector<int64_t>& values) {
  uint64_t h = 0;
  for (int64_t v : values) h = h * 1000003u + static_cast<uint64_t>(v) + 1u;
  return h;
}

// float.hex() of a double in [0, 1), as Python writes it: 0x1.<13 hex digits>p<exp>, or 0x0.0p+0.
std::string float_hex(double v) {
  if (v == 0) return "0x0.0p+0";
  int exp = 0;
  const double m = std::frexp(v, &exp);  // v = m * 2^exp, m in [0.5, 1)
  const auto bits = static_cast<uint64_t>(std::ldexp(m, 53)) & ((uint64_t{1} << 52) - 1);
  char buf[64];
  std::snprintf(buf, sizeof buf, "0x1.%013llxp%+d", static_cast<unsigned long long>(bits), exp - 1);
  return buf;
}

}  // namespace

TEST_CASE("py_random: MT19937 seeded as random.seed(int) gives CPython's words, bits, randbelow, random()") {
  for (const json& s : fixture().at("streams")) {
    const uint64_t seed = seed_of(s.at("seed"));
    CAPTURE(seed);
    PyRandom words(seed);
    const auto expected = s.at("u32").get<std::vector<uint32_t>>();
    size_t first_mismatch = expected.size();
    for (size_t i = 0; i < expected.size() && first_mismatch == expected.size(); ++i)
      if (words.next_u32() != expected[i]) first_mismatch = i;
    CHECK(first_mismatch == expected.size());

    PyRandom bits(seed);
    for (const json& b : s.at("getrandbits")) {
      const int k = b.at(0);
      CAPTURE(k);
      CHECK(bits.getrandbits(k) == std::stoull(b.at(1).get<std::string>()));
    }
    PyRandom below(seed);
    for (const json& b : s.at("randbelow")) {
      const uint64_t n = b.at(0);
      CAPTURE(n);
      CHECK(below.randbelow(n) == b.at(1).get<uint64_t>());
    }
    PyRandom floats(seed);
    for (const json& f : s.at("random_hex")) CHECK(float_hex(floats.random()) == f.get<std::string>());
  }
}

TEST_CASE("py_random: random.sample(range(n), k) in both algorithms, order included") {
  int pools = 0, sets = 0;
  for (const json& s : fixture().at("samples")) {
    const int64_t n = s.at("n"), k = s.at("k");
    CAPTURE(n);
    CAPTURE(k);
    CHECK(py_sample_uses_pool(n, k) == s.at("pool").get<bool>());
    (s.at("pool").get<bool>() ? pools : sets) += 1;
    PyRandom r(s.at("seed").get<uint64_t>());
    CHECK(r.sample(n, k) == s.at("values").get<std::vector<int64_t>>());
  }
  CHECK(pools >= 4);  // the fixture covers both algorithms and their boundary (21/22, 85/86)
  CHECK(sets >= 4);
  PyRandom r(1);
  CHECK_THROWS_WITH_AS(r.sample(5, 6), doctest::Contains("sample larger than population"), Error);
}

TEST_CASE("py_random: study 1's poisons and Random subset for the published seeds, 993 / 995 / 995 kept") {
  std::vector<int64_t> kept;
  for (const json& s : fixture().at("study1")) {
    const uint64_t seed = s.at("seed");
    CAPTURE(seed);
    PyRandom a(seed);
    const std::vector<int64_t> poisons = a.sample(50000, 1000);
    CHECK(poisons == s.at("poisons").get<std::vector<int64_t>>());
    PyRandom b(seed);
    const std::vector<int64_t> subset = b.sample(50000, 25000);
    CHECK(std::to_string(list_hash(subset)) == s.at("subset_hash").get<std::string>());
    const auto prefix = s.at("subset_prefix").get<std::vector<int64_t>>();
    CHECK(std::vector<int64_t>(subset.begin(), subset.begin() + static_cast<int64_t>(prefix.size())) == prefix);
    CHECK(py_sample_uses_pool(50000, 1000) == s.at("pool_poisons").get<bool>());
    CHECK(py_sample_uses_pool(50000, 25000) == s.at("pool_subset").get<bool>());
    const std::set<int64_t> chosen(subset.begin(), subset.end());
    kept.push_back(std::count_if(poisons.begin(), poisons.end(), [&](int64_t i) { return chosen.count(i) > 0; }));
    CHECK(kept.back() == s.at("kept").get<int64_t>());
  }
  // The published Random row (reference/coreset_study_backdoor_all_replicates.csv).
  CHECK(kept == std::vector<int64_t>{993, 995, 995});
}
