#include "engine/caching_allocator.h"

#include <algorithm>

#include "engine/error.h"

namespace sieve {

size_t CachingAllocator::round(size_t bytes) {
  const size_t q = bytes < (1u << 20) ? 512 : (2u << 20);
  return bytes == 0 ? q : (bytes + q - 1) / q * q;
}

void* CachingAllocator::alloc(size_t bytes) {
  const size_t size = round(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  size_t real = size;
  std::multimap<size_t, void*>& cache = active_pool_ ? pools_.at(active_pool_).free_blocks : free_blocks_;
  auto it = cache.lower_bound(size);
  if (it != cache.end() && it->first <= 2 * size) {
    // A cached block of the same size or a larger one of at most twice the size.
    p = it->second;
    real = it->first;
    stats_.cached -= real;
    cache.erase(it);
  } else {
    p = backing_->allocate(size);
    if (!p) {
      release_cached_locked();
      p = backing_->allocate(size);
    }
    if (!p) {
      const std::string report = backing_->memory_report();
      fail("CUDA out of memory: asked for ", size, " bytes (", size >> 20, " MiB)", report.empty() ? "" : ", ",
           report, "; sieve holds ", stats_.in_use >> 20, " MiB in use");
    }
    stats_.driver_allocs++;
    if (active_pool_) {
      pool_of_[p] = active_pool_;
      pools_.at(active_pool_).bytes += real;
    }
  }
  live_sizes_[p] = real;
  stats_.in_use += real;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  if (poison_) backing_->fill(p, real, 0xFF);
  return p;
}

void CachingAllocator::free(void* block, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_sizes_.find(block);
  SIEVE_CHECK(it != live_sizes_.end(), "caching allocator: freeing a block it did not hand out");
  const size_t real = it->second;
  SIEVE_CHECK(round(bytes) <= real, "caching allocator: freeing ", bytes, " bytes from a block of ", real);
  live_sizes_.erase(it);
  const auto owner = pool_of_.find(block);
  if (owner != pool_of_.end() && !pools_.at(owner->second).released) {
    pools_.at(owner->second).free_blocks.emplace(real, block);
  } else {
    if (owner != pool_of_.end()) {  // born in a pool released since
      Pool& pool = pools_.at(owner->second);
      pool.bytes -= real;
      if (pool.bytes == 0) pools_.erase(owner->second);
      pool_of_.erase(owner);
    }
    free_blocks_.emplace(real, block);
  }
  stats_.in_use -= real;
  stats_.cached += real;
}

CudaAllocatorStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CachingAllocator::set_poison(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  poison_ = on;
}

int CachingAllocator::begin_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  SIEVE_CHECK(active_pool_ == 0, "caching allocator: a private pool is already active");
  active_pool_ = next_pool_++;
  pools_[active_pool_];
  return active_pool_;
}

void CachingAllocator::end_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  active_pool_ = 0;
}

void CachingAllocator::release_pool(int pool) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pools_.find(pool);
  SIEVE_CHECK(it != pools_.end() && !it->second.released, "caching allocator: no private pool ", pool);
  SIEVE_CHECK(active_pool_ != pool, "caching allocator: releasing the active pool ", pool);
  Pool& p = it->second;
  for (auto& [size, block] : p.free_blocks) {
    free_blocks_.emplace(size, block);
    pool_of_.erase(block);
    p.bytes -= size;
  }
  p.free_blocks.clear();
  p.released = true;
  if (p.bytes == 0) pools_.erase(it);
}

size_t CachingAllocator::pool_bytes(int pool) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pools_.find(pool);
  return it == pools_.end() ? 0 : it->second.bytes;
}

void CachingAllocator::release_cached_locked() {
  if (free_blocks_.empty()) return;
  backing_->synchronize();
  for (auto& [size, p] : free_blocks_) {
    backing_->release(p);
    stats_.cached -= size;
  }
  free_blocks_.clear();
}

}  // namespace sieve
