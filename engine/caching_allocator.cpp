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
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= 2 * size) {
    // A cached block of the same size or a larger one of at most twice the size.
    p = it->second;
    real = it->first;
    stats_.cached -= real;
    free_blocks_.erase(it);
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
  free_blocks_.emplace(real, block);
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

void CachingAllocator::release_cached_locked() {
  if (free_blocks_.empty()) return;
  backing_->synchronize();
  for (auto& [size, p] : free_blocks_) backing_->release(p);
  free_blocks_.clear();
  stats_.cached = 0;
}

}  // namespace sieve
