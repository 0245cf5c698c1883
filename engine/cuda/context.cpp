// CUDA context: GPU detection, the caching allocator, copies, one stream and the library handles.
#include "engine/cuda/context.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "engine/device.h"

namespace sieve {

namespace {

int visible_devices(std::string* why) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // No driver / insufficient driver / no device: all mean "no GPU here", not a failure.
    if (why) *why = cat("no CUDA device visible (", cudaGetErrorString(err), ")");
    cudaGetLastError();
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device visible";
  return count;
}

// Size-bucketed caching allocator. Small blocks round to 512 B, large ones to 2 MiB, and freed
// blocks wait in a per-size free list. Single stream, so reuse needs no events.
struct CachingAllocator {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  CudaAllocatorStats stats;

  static size_t round(size_t bytes) {
    const size_t q = bytes < (1u << 20) ? 512 : (2u << 20);
    return bytes == 0 ? q : (bytes + q - 1) / q * q;
  }

  void* alloc(size_t bytes) {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu);
    auto it = free_blocks.lower_bound(size);
    // Reuse a cached block of the same size, or a larger one of at most twice the size.
    if (it != free_blocks.end() && it->first <= 2 * size) {
      void* p = it->second;
      stats.cached -= it->first;
      stats.in_use += it->first;
      free_blocks.erase(it);
      stats.peak_in_use = std::max(stats.peak_in_use, stats.in_use);
      return p;
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("CUDA out of memory: asked for ", size, " bytes (", size >> 20, " MiB), ", free_b >> 20,
           " MiB free of ", total_b >> 20, " MiB; sieve holds ", stats.in_use >> 20,
           " MiB in use (", cudaGetErrorString(err), ")");
    }
    stats.driver_allocs++;
    stats.in_use += size;
    stats.peak_in_use = std::max(stats.peak_in_use, stats.in_use);
    return p;
  }

  void free(void* p, size_t bytes) {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu);
    free_blocks.emplace(size, p);
    stats.in_use -= size;
    stats.cached += size;
  }

  void release_cached_locked() {
    cudaDeviceSynchronize();
    for (auto& [size, p] : free_blocks) cudaFree(p);
    free_blocks.clear();
    stats.cached = 0;
  }
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();  // outlives static tensors at exit
  return *a;
}

}  // namespace

bool cuda_available() {
  static const bool available = visible_devices(nullptr) > 0;
  return available;
}

std::string cuda_device_description() {
  std::string why;
  if (visible_devices(&why) == 0) return why;
  int dev = 0;
  cudaGetDevice(&dev);
  cudaDeviceProp prop{};
  SIEVE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return cat(prop.name, " (sm_", prop.major, prop.minor, ", ",
             static_cast<double>(prop.totalGlobalMem) / (1ull << 30), " GiB)");
}

std::string cuda_library_versions() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  const size_t dnn = cudnnGetVersion();
  int blas = 0;
  cublasGetProperty(MAJOR_VERSION, &blas);
  int blas_minor = 0, blas_patch = 0;
  cublasGetProperty(MINOR_VERSION, &blas_minor);
  cublasGetProperty(PATCH_LEVEL, &blas_patch);
  return cat("CUDA runtime ", runtime / 1000, ".", runtime % 1000 / 10, ", driver ",
             driver == 0 ? std::string("none") : cat(driver / 1000, ".", driver % 1000 / 10), ", cuDNN ",
             dnn / 10000, ".", dnn % 10000 / 100, ".", dnn % 100, ", cuBLAS ", blas, ".", blas_minor, ".",
             blas_patch);
}

void* cuda_alloc(size_t bytes) { return allocator().alloc(bytes); }
void cuda_free(void* ptr, size_t bytes) { allocator().free(ptr, bytes); }
CudaAllocatorStats cuda_allocator_stats() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().stats;
}
void cuda_empty_cache() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().release_cached_locked();
}

void cuda_synchronize() { SIEVE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream())); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const cudaMemcpyKind kind = dst_device == Device::cpu
                                  ? cudaMemcpyDeviceToHost
                                  : (src_device == Device::cpu ? cudaMemcpyHostToDevice
                                                               : cudaMemcpyDeviceToDevice);
  SIEVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cuda::stream()));
  if (kind != cudaMemcpyDeviceToDevice) SIEVE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

namespace cuda {

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st = nullptr;
    SIEVE_CHECK(cuda_available(), "CUDA requested but ", cuda_device_description());
    SIEVE_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle = nullptr;
    SIEVE_CUBLAS_CHECK(cublasCreate(&handle));
    SIEVE_CUBLAS_CHECK(cublasSetStream(handle, stream()));
    return handle;
  }();
  return h;
}

cudnnHandle_t cudnn() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t handle = nullptr;
    SIEVE_CUDNN_CHECK(cudnnCreate(&handle));
    SIEVE_CUDNN_CHECK(cudnnSetStream(handle, stream()));
    return handle;
  }();
  return h;
}

cusolverDnHandle_t cusolver() {
  static cusolverDnHandle_t h = [] {
    cusolverDnHandle_t handle = nullptr;
    SIEVE_CUSOLVER_CHECK(cusolverDnCreate(&handle));
    SIEVE_CUSOLVER_CHECK(cusolverDnSetStream(handle, stream()));
    return handle;
  }();
  return h;
}

const char* cublas_status_string(cublasStatus_t s) { return cublasGetStatusString(s); }

const char* cusolver_status_string(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUSOLVER_STATUS_INVALID_VALUE: return "invalid value";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "internal error";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "matrix type not supported";
    default: return "unknown cuSOLVER status";
  }
}

}  // namespace cuda
}  // namespace sieve
