// The size-bucketed caching allocator behind GPU tensors, written against an abstract backing
// allocator so its bookkeeping runs (and is tested) anywhere: engine/cuda/context.cpp backs it
// with cudaMalloc, tests/unit/allocator_test.cpp with a fake that can run out of memory or fail.
// Small blocks round to 512 B, large ones to 2 MiB; a freed block waits in a free list filed
// under its real size and is handed out again for requests of up to its size and at least half
// of it. Single stream, so reuse needs no events.
//
// Private pools serve CUDA graph capture: while a pool is active, blocks come only from that
// pool's own free list or the backing, never from the shared cache, and every block born in the
// pool returns to it when freed, whenever that happens. A captured graph's kernels keep the
// addresses they were captured with, so no tensor outside the graph may ever be handed one of
// them while the graph lives; release_pool gives the pool's blocks back to the shared cache
// once the graph is gone.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/device.h"

namespace sieve {

class BlockBacking {
 public:
  virtual ~BlockBacking() = default;
  // A new block, or nullptr when the device is out of memory; any other failure throws,
  // naming the backing's own error (e.g. a sticky CUDA error left by an earlier kernel fault).
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* block) = 0;
  virtual void synchronize() {}                                  // before cached blocks go back
  virtual void fill(void* block, size_t bytes, uint8_t byte) = 0;  // debug poisoning
  virtual std::string memory_report() const { return ""; }     // e.g. "900 MiB free of 80 GiB"
};

class CachingAllocator {
 public:
  explicit CachingAllocator(std::unique_ptr<BlockBacking> backing) : backing_(std::move(backing)) {}

  static size_t round(size_t bytes);
  void* alloc(size_t bytes);
  // Frees a block alloc() handed out; `bytes` is what was asked for (checked against the block).
  void free(void* block, size_t bytes);
  CudaAllocatorStats stats();
  void empty_cache();
  // Debug mode: every block handed out is first filled with 0xFF bytes (a NaN in f32 and f64),
  // so an element a kernel forgot to write shows up as NaN in any comparison.
  void set_poison(bool on);

  // Routes every alloc() to a new private pool until end_pool(); returns the pool's id (> 0).
  int begin_pool();
  void end_pool();
  // Moves a pool's free blocks to the shared cache. Its blocks still in use stay filed under
  // the pool and go to the shared cache when they are freed.
  void release_pool(int pool);
  size_t pool_bytes(int pool);  // the real size of every block the pool owns, free or in use

 private:
  struct Pool {
    std::multimap<size_t, void*> free_blocks;
    size_t bytes = 0;
    bool released = false;
  };
  void release_cached_locked();

  std::unique_ptr<BlockBacking> backing_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_blocks_;      // real size -> cached block
  std::unordered_map<void*, size_t> live_sizes_;  // block handed out -> its real size
  std::unordered_map<void*, int> pool_of_;         // block born in a private pool -> the pool
  std::map<int, Pool> pools_;
  int active_pool_ = 0;  // 0: the shared cache
  int next_pool_ = 1;
  CudaAllocatorStats stats_;
  bool poison_ = false;
};

}  // namespace sieve
