// Device selection and precision settings shared by both builds; the no-CUDA build's stubs.
#include "engine/device.h"

#include <cstdlib>
#include <cstring>

#include "engine/error.h"

namespace sieve {

namespace {
Precision g_precision = Precision::fp32;
bool g_cpu_fast_path = true;
bool g_cpu_blocked_layout = true;
// SIEVE_CPU_WINOGRAD=0 turns the Winograd convolutions off for a whole run (A/B measurements,
// or direct convolution's rounding everywhere).
bool winograd_by_default() {
  const char* v = std::getenv("SIEVE_CPU_WINOGRAD");
  return !(v && std::strcmp(v, "0") == 0);
}
bool g_cpu_winograd = winograd_by_default();
// SIEVE_CPU_BF16_HANDOFF=0: batch norm writes f32 gradients for bf16 convolutions too (A/B).
bool g_cpu_bf16_handoff = [] {
  const char* v = std::getenv("SIEVE_CPU_BF16_HANDOFF");
  return !(v && std::strcmp(v, "0") == 0);
}();
thread_local bool g_host_sync_free = false;
}

HostSyncFreeScope::HostSyncFreeScope() : previous_(g_host_sync_free) { g_host_sync_free = true; }
HostSyncFreeScope::~HostSyncFreeScope() { g_host_sync_free = previous_; }
bool host_sync_free() { return g_host_sync_free; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") {
    SIEVE_CHECK(cuda_available(), "--device cuda: ", cuda_device_description());
    return Device::cuda;
  }
  if (name == "auto") {
    if (cuda_available()) return Device::cuda;
    SIEVE_CHECK(!gpu_required(), "--device auto: SIEVE_REQUIRE_GPU=1 but ", cuda_device_description());
    return Device::cpu;
  }
  fail("--device: '", name, "' is not one of auto, cpu, cuda");
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  fail("--precision: '", name, "' is not one of fp32, tf32, bf16");
}

bool gpu_required() {
  const char* v = std::getenv("SIEVE_REQUIRE_GPU");
  return v && std::strcmp(v, "1") == 0;
}

void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }

void set_cpu_fast_path(bool on) { g_cpu_fast_path = on; }
bool cpu_fast_path() { return g_cpu_fast_path; }

void set_cpu_blocked_layout(bool on) { g_cpu_blocked_layout = on; }
bool cpu_blocked_layout() { return g_cpu_blocked_layout; }
void set_cpu_winograd(bool on) { g_cpu_winograd = on; }
bool cpu_winograd() { return g_cpu_winograd; }
void set_cpu_bf16_handoff(bool on) { g_cpu_bf16_handoff = on; }
bool cpu_bf16_handoff() { return g_cpu_bf16_handoff; }

#if !SIEVE_WITH_CUDA
bool cuda_available() { return false; }
std::string cuda_device_description() { return "sieve was built without CUDA"; }
std::string cuda_library_versions() { return "built without CUDA"; }
void* cuda_alloc(size_t) { fail("sieve was built without CUDA: cannot allocate GPU memory"); }
void cuda_free(void*, size_t) {}
void cuda_set_alloc_poison(bool) {}
CudaAllocatorStats cuda_allocator_stats() { return {}; }
void cuda_empty_cache() {}
void cuda_synchronize() {}
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  SIEVE_CHECK(dst_device == Device::cpu && src_device == Device::cpu,
              "sieve was built without CUDA: cannot copy to or from the GPU");
  if (bytes > 0) std::memcpy(dst, src, bytes);  // an empty tensor's pointer may be null
}

struct CudaGraph::Impl {};
CudaGraph::CudaGraph() = default;
CudaGraph::~CudaGraph() = default;
void CudaGraph::begin_capture() { fail("sieve was built without CUDA: no CUDA graphs"); }
void CudaGraph::end_capture() { fail("sieve was built without CUDA: no CUDA graphs"); }
void CudaGraph::replay() { fail("sieve was built without CUDA: no CUDA graphs"); }
bool CudaGraph::ready() const { return false; }
void CudaGraph::reset() {}

ProfileRange::ProfileRange(const char*) {}
ProfileRange::~ProfileRange() = default;
#endif

}  // namespace sieve
