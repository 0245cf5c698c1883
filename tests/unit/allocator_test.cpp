// The GPU caching allocator's bookkeeping (engine/caching_allocator.h) over a fake backing
// allocator: blocks keep their real size through reuse, in_use and peak stay exact, an
// out-of-memory is retried after the cache is released and then reported, any other backing
// failure passes through under its own name, and the debug mode poisons every block handed out.
// Also SIEVE_REQUIRE_GPU: --device auto refuses to fall back to the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "engine/caching_allocator.h"
#include "engine/error.h"

using namespace sieve;

namespace {

// Host memory with a capacity; counts what it hands out and fills.
struct FakeBacking : BlockBacking {
  size_t capacity, used = 0;
  int allocations = 0, releases = 0, syncs = 0, fills = 0;
  bool broken = false;  // every allocation fails with an error that is not out-of-memory
  std::vector<std::pair<void*, size_t>> live;
  explicit FakeBacking(size_t cap) : capacity(cap) {}
  ~FakeBacking() override {
    for (auto& [p, n] : live) std::free(p);
  }
  void* allocate(size_t bytes) override {
    if (broken) fail("fake device error: an illegal address was encountered");
    if (used + bytes > capacity) return nullptr;
    void* p = std::malloc(bytes);
    live.push_back({p, bytes});
    used += bytes;
    ++allocations;
    return p;
  }
  void release(void* block) override {
    for (size_t i = 0; i < live.size(); ++i)
      if (live[i].first == block) {
        used -= live[i].second;
        std::free(block);
        live.erase(live.begin() + static_cast<int64_t>(i));
        ++releases;
        return;
      }
  }
  void synchronize() override { ++syncs; }
  void fill(void* block, size_t bytes, uint8_t byte) override {
    std::memset(block, byte, bytes);
    ++fills;
  }
  std::string memory_report() const override { return "fake report"; }
};

}  // namespace

TEST_CASE("caching allocator: a reused larger block keeps its size in the books") {
  auto owned = std::make_unique<FakeBacking>(size_t{1} << 30);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  void* big = a.alloc(1000);  // rounds to 1024
  a.free(big, 1000);
  CHECK(a.stats().cached == 1024);
  CHECK(a.stats().in_use == 0);
  void* small = a.alloc(600);  // rounds to 1024: reuses the cached block
  CHECK(small == big);
  CHECK(fake.allocations == 1);
  a.free(small, 600);
  // Filed under 1024 again: a request for 1024 reuses it instead of asking the backing.
  CHECK(a.stats().cached == 1024);
  CHECK(a.stats().in_use == 0);
  void* again = a.alloc(1024);
  CHECK(again == big);
  CHECK(fake.allocations == 1);
  // 512-byte request against a 1024-byte cached block: at most twice the size, reused.
  a.free(again, 1024);
  void* half = a.alloc(512);
  CHECK(half == big);
  CHECK(a.stats().in_use == 1024);
  CHECK(a.stats().peak_in_use == 1024);
  a.free(half, 512);
  CHECK(a.stats().in_use == 0);
  CHECK_THROWS_WITH_AS(a.free(half, 512), doctest::Contains("did not hand out"), Error);
}

TEST_CASE("caching allocator: in_use returns to 0 and the cache holds every byte over mixed reuse") {
  auto owned = std::make_unique<FakeBacking>(size_t{1} << 32);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  std::vector<std::pair<void*, size_t>> held;
  for (int round = 0; round < 4; ++round) {
    // Shrinking requests: each round reuses the previous round's larger cached blocks.
    for (size_t bytes : {4000u >> round, 3u << (21 - round), 700u, 40u}) held.push_back({a.alloc(bytes), bytes});
    std::set<void*> distinct;
    for (auto& [p, n] : held) distinct.insert(p);
    CHECK(distinct.size() == held.size());
    CHECK(a.stats().in_use + a.stats().cached == fake.used);
    for (size_t i = held.size() / 2; i < held.size(); ++i) a.free(held[i].first, held[i].second);
    held.resize(held.size() / 2);
  }
  for (auto& [p, n] : held) a.free(p, n);
  CHECK(a.stats().in_use == 0);
  CHECK(a.stats().cached == fake.used);
  CHECK(a.stats().peak_in_use <= fake.used);
  a.empty_cache();
  CHECK(a.stats().cached == 0);
  CHECK(fake.used == 0);
}

TEST_CASE("caching allocator: out of memory frees the cache and retries, then names the request") {
  auto owned = std::make_unique<FakeBacking>(4096);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  void* p = a.alloc(3000);  // 3072 of 4096
  a.free(p, 3000);          // cached
  // 4000 bytes round to 4096, more than the cached 3072: the fake holds only 1024 more, so the
  // cache must go back (after a synchronisation) before the retry succeeds.
  void* s = a.alloc(4000);
  CHECK(fake.releases == 1);
  CHECK(fake.syncs == 1);
  CHECK(a.stats().cached == 0);
  CHECK_THROWS_WITH_AS(a.alloc(100), doctest::Contains("CUDA out of memory: asked for 512 bytes"), Error);
  CHECK_THROWS_WITH_AS(a.alloc(100), doctest::Contains("fake report; sieve holds 0 MiB in use"), Error);
  a.free(s, 4000);
}

TEST_CASE("caching allocator: a backing error that is not out-of-memory passes through by name") {
  auto owned = std::make_unique<FakeBacking>(1 << 20);
  owned->broken = true;
  CachingAllocator a(std::move(owned));
  CHECK_THROWS_WITH_AS(a.alloc(100), doctest::Contains("illegal address"), Error);
  CHECK(a.stats().in_use == 0);
}

TEST_CASE("caching allocator: the debug mode fills every block handed out with NaN bytes") {
  auto owned = std::make_unique<FakeBacking>(1 << 20);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  a.set_poison(true);
  auto* f = static_cast<float*>(a.alloc(256));
  for (int i = 0; i < 64; ++i) CHECK(std::isnan(f[i]));
  for (int i = 0; i < 64; ++i) f[i] = 1.0f;
  a.free(f, 256);
  auto* g = static_cast<float*>(a.alloc(256));  // the same block, poisoned again on reuse
  CHECK(g == f);
  CHECK(std::isnan(g[63]));
  CHECK(fake.fills == 2);
  a.set_poison(false);
  a.free(g, 256);
  a.alloc(256);
  CHECK(fake.fills == 2);
}

TEST_CASE("caching allocator: a private pool (CUDA graph capture) never shares blocks with the cache") {
  auto owned = std::make_unique<FakeBacking>(size_t{1} << 30);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  void* shared = a.alloc(4096);
  a.free(shared, 4096);  // cached in the shared cache
  const int pool = a.begin_pool();
  CHECK(pool > 0);
  // Inside the pool the shared cache's block is not handed out: a captured kernel would keep
  // writing to it after the graph's capture, under whatever tensor owns it next.
  void* in_pool = a.alloc(4096);
  CHECK(in_pool != shared);
  CHECK(fake.allocations == 2);
  void* temp = a.alloc(2048);
  a.free(temp, 2048);
  void* reused = a.alloc(2048);  // blocks freed within the pool are reused within it
  CHECK(reused == temp);
  CHECK(fake.allocations == 3);
  a.end_pool();
  CHECK(a.pool_bytes(pool) == 4096 + 2048);
  a.free(in_pool, 4096);
  a.free(reused, 2048);
  // After the capture the pool's free blocks stay the pool's: shared requests get other blocks.
  void* after = a.alloc(4096);
  CHECK(after == shared);
  void* other = a.alloc(2048);
  CHECK(other != reused);
  CHECK(fake.allocations == 4);
  CHECK(a.stats().in_use == 4096 + 2048);
  CHECK(a.stats().cached == 4096 + 2048);
  CHECK(a.stats().in_use + a.stats().cached == fake.used);
  // The graph is gone: its blocks join the shared cache and are handed out again.
  a.release_pool(pool);
  CHECK(a.pool_bytes(pool) == 0);
  CHECK(a.alloc(4096) == in_pool);
  CHECK(a.stats().in_use + a.stats().cached == fake.used);
  CHECK_THROWS_WITH_AS(a.release_pool(pool), doctest::Contains("no private pool"), Error);
}

TEST_CASE("caching allocator: a block still in use when its pool is released returns to the cache when freed") {
  auto owned = std::make_unique<FakeBacking>(size_t{1} << 30);
  FakeBacking& fake = *owned;
  CachingAllocator a(std::move(owned));
  const int pool = a.begin_pool();
  CHECK_THROWS_WITH_AS(a.begin_pool(), doctest::Contains("already active"), Error);
  void* held = a.alloc(1024);
  a.end_pool();
  a.release_pool(pool);
  CHECK(a.pool_bytes(pool) == 1024);
  a.free(held, 1024);
  CHECK(a.pool_bytes(pool) == 0);
  CHECK(a.alloc(1024) == held);  // now an ordinary cached block
  CHECK(fake.allocations == 1);
  // The shared cache's release leaves the books exact.
  void* second = a.alloc(1024);
  a.free(second, 1024);
  a.empty_cache();
  CHECK(a.stats().cached == 0);
  CHECK(a.stats().in_use == 1024);
  CHECK(a.stats().in_use + a.stats().cached == fake.used);
}

TEST_CASE("SIEVE_REQUIRE_GPU=1: --device auto fails instead of training on the CPU without a usable GPU") {
  if (cuda_available()) return;  // this machine has a GPU: auto picks it either way
  ::setenv("SIEVE_REQUIRE_GPU", "1", 1);
  CHECK(gpu_required());
  CHECK_THROWS_WITH_AS(parse_device("auto"), doctest::Contains("--device auto: SIEVE_REQUIRE_GPU=1 but"), Error);
  ::unsetenv("SIEVE_REQUIRE_GPU");
  CHECK(!gpu_required());
  CHECK(parse_device("auto") == Device::cpu);
}
