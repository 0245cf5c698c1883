// CUDA context: GPU detection, the caching allocator, copies, one stream and the library handles.
#include "engine/cuda/context.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include <nvtx3/nvToolsExt.h>

#include "engine/caching_allocator.h"
#include "engine/device.h"

namespace sieve {

namespace {

int visible_devices(std::string* why) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) {
      int runtime = 0, driver = 0;
      cudaRuntimeGetVersion(&runtime);
      cudaDriverGetVersion(&driver);
      if (err == cudaErrorInsufficientDriver && driver > 0)
        *why = cat("the NVIDIA driver supports CUDA up to ", driver / 1000, ".", driver % 1000 / 10,
                   " but sieve was built with CUDA runtime ", runtime / 1000, ".", runtime % 1000 / 10,
                   " (cudaErrorInsufficientDriver): update the driver or build with an older toolkit");
      else
        *why = cat("no CUDA device visible (", cudaGetErrorName(err), ": ", cudaGetErrorString(err), ")");
    }
    cudaGetLastError();
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device visible";
  return count;
}

// cudaMalloc behind the caching allocator (engine/caching_allocator.h).
class CudaBacking : public BlockBacking {
 public:
  void* allocate(size_t bytes) override {
    void* p = nullptr;
    // Allowed while this thread captures a CUDA graph (the block joins the graph's private pool).
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    const cudaError_t err = cudaMalloc(&p, bytes);
    cudaThreadExchangeStreamCaptureMode(&mode);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it and let the allocator free its cache
      return nullptr;
    }
    if (err != cudaSuccess)
      fail("CUDA error in cudaMalloc of ", bytes, " bytes: ", cudaGetErrorName(err), ": ", cudaGetErrorString(err),
           " (not an out-of-memory: usually an earlier kernel's fault, reported at the next CUDA call)");
    return p;
  }
  void release(void* block) override { cudaFree(block); }
  void synchronize() override { cudaDeviceSynchronize(); }
  void fill(void* block, size_t bytes, uint8_t byte) override {
    SIEVE_CUDA_CHECK(cudaMemsetAsync(block, byte, bytes, cuda::stream()));
  }
  std::string memory_report() const override {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return "";
    return cat(free_b >> 20, " MiB free of ", total_b >> 20, " MiB");
  }
};

CachingAllocator& allocator() {
  static CachingAllocator* a = [] {
    auto* created = new CachingAllocator(std::make_unique<CudaBacking>());  // outlives static tensors at exit
    const char* poison = std::getenv("SIEVE_ALLOC_POISON");
    created->set_poison(poison && std::string(poison) == "1");
    return created;
  }();
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
CudaAllocatorStats cuda_allocator_stats() { return allocator().stats(); }
void cuda_empty_cache() { allocator().empty_cache(); }
void cuda_set_alloc_poison(bool on) { allocator().set_poison(on); }

// Nothing to wait for without a usable GPU (a CUDA build on a CPU-only machine).
void cuda_synchronize() {
  if (cuda_available()) SIEVE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  SIEVE_CHECK(host_sync_free() == false || (dst_device == Device::cuda && src_device == Device::cuda),
              "host synchronisation inside a sync-free GPU training step: a copy of ", bytes, " bytes ",
              dst_device == Device::cpu ? "to the host" : "from the host",
              " (everything a step reads or writes goes through device memory; see training/trainer.cpp)");
  const cudaMemcpyKind kind = dst_device == Device::cpu
                                  ? cudaMemcpyDeviceToHost
                                  : (src_device == Device::cpu ? cudaMemcpyHostToDevice
                                                               : cudaMemcpyDeviceToDevice);
  SIEVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cuda::stream()));
  if (kind != cudaMemcpyDeviceToDevice) SIEVE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

struct CudaGraph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  int pool = 0;
  bool capturing = false;
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}

CudaGraph::~CudaGraph() {
  try {
    reset();
  } catch (const std::exception&) {
    // a device error at teardown is reported by the next CUDA call that checks
  }
}

void CudaGraph::begin_capture() {
  SIEVE_CHECK(!impl_->capturing && !ready(), "CUDA graph: already captured (reset it first)");
  cuda::cublas(), cuda::cudnn();  // library handles and workspaces exist before the capture
  impl_->pool = allocator().begin_pool();
  const cudaError_t err = cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    allocator().end_pool();
    allocator().release_pool(impl_->pool);
    impl_->pool = 0;
    fail("CUDA graph: cudaStreamBeginCapture: ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
  }
  impl_->capturing = true;
}

void CudaGraph::end_capture() {
  SIEVE_CHECK(impl_->capturing, "CUDA graph: end_capture without begin_capture");
  impl_->capturing = false;
  allocator().end_pool();
  const cudaError_t err = cudaStreamEndCapture(cuda::stream(), &impl_->graph);
  if (err != cudaSuccess) {
    cudaGetLastError();
    reset();
    fail("CUDA graph capture of the training step failed: ", cudaGetErrorName(err), ": ", cudaGetErrorString(err),
         " (an operation in the step cannot be captured; --cuda-graph off trains without graphs)");
  }
  SIEVE_CUDA_CHECK(cudaGraphInstantiate(&impl_->exec, impl_->graph, 0));
}

void CudaGraph::replay() {
  SIEVE_CHECK(ready(), "CUDA graph: replay before a capture");
  SIEVE_CUDA_CHECK(cudaGraphLaunch(impl_->exec, cuda::stream()));
}

bool CudaGraph::ready() const { return impl_->exec != nullptr; }

void CudaGraph::reset() {
  if (impl_->capturing) {  // a capture abandoned by an exception: the stream leaves capture mode
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(cuda::stream(), &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    allocator().end_pool();
    impl_->capturing = false;
  }
  if (impl_->exec) {
    SIEVE_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // a replay may still use the pool
    cudaGraphExecDestroy(impl_->exec);
    impl_->exec = nullptr;
  }
  if (impl_->graph) cudaGraphDestroy(impl_->graph);
  impl_->graph = nullptr;
  if (impl_->pool) allocator().release_pool(impl_->pool);
  impl_->pool = 0;
}

ProfileRange::ProfileRange(const char* name) { nvtxRangePushA(name); }
ProfileRange::~ProfileRange() { nvtxRangePop(); }

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
    // A workspace of its own, so cuBLAS allocates nothing inside a captured CUDA graph.
    constexpr size_t kWorkspaceBytes = size_t{32} << 20;
    void* workspace = nullptr;
    SIEVE_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
    SIEVE_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, kWorkspaceBytes));
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
