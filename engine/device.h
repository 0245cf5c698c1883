// The device layer seen from host code that must build with or without CUDA: GPU detection,
// the caching allocator, copies and precision settings. The CUDA-only side (streams, library
// handles, error macros) is engine/cuda/context.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/dtype.h"

namespace sieve {

// True when the build has CUDA and at least one GPU is usable. A machine with the toolkit but no
// driver (CI, build servers) has no GPU; one whose driver is older than the CUDA runtime sieve
// was built with has none usable either, and the description says which versions disagree.
bool cuda_available();
std::string cuda_device_description();  // "NVIDIA H200 (sm_90, 139.8 GiB)" or why there is none
// SIEVE_REQUIRE_GPU=1: a machine meant to have a GPU. Where none is usable, --device auto fails
// (naming the reason) instead of training on the CPU, and the GPU test suite fails instead of
// reporting Skipped.
bool gpu_required();
// "CUDA runtime 13.0, driver 13.0, cuDNN 9.13.0, cuBLAS 13.0.0" (or "built without CUDA").
std::string cuda_library_versions();

// "auto" | "cpu" | "cuda" -> Device; auto picks cuda when a GPU is usable (see gpu_required).
Device parse_device(const std::string& name);

// Caching allocator: blocks are rounded up and kept for reuse, so a training step after the
// first allocates nothing from the driver.
void* cuda_alloc(size_t bytes);
void cuda_free(void* ptr, size_t bytes);
struct CudaAllocatorStats {
  size_t in_use = 0, cached = 0, peak_in_use = 0;
  int64_t driver_allocs = 0;
};
CudaAllocatorStats cuda_allocator_stats();
void cuda_empty_cache();
// Debug mode of the GPU allocator: every block handed out is filled with 0xFF bytes (NaN in f32
// and f64) first, so an unwritten output element fails any parity check. Also switched on by
// SIEVE_ALLOC_POISON=1; the GPU test suite turns it on.
void cuda_set_alloc_poison(bool on);

// Copies between any two devices; synchronous with respect to the host.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void cuda_synchronize();

// Marks code that must not wait for the GPU: the CUDA training step, eager or captured. Inside,
// a copy between the host and the GPU fails loudly (it would stall the step, and inside a graph
// capture it is not allowed), and ops skip their host-side checks of device results (the
// trainer checks labels and indices on the host before they go up, once per epoch).
class HostSyncFreeScope {
 public:
  HostSyncFreeScope();
  ~HostSyncFreeScope();
  HostSyncFreeScope(const HostSyncFreeScope&) = delete;
  HostSyncFreeScope& operator=(const HostSyncFreeScope&) = delete;

 private:
  bool previous_;
};
bool host_sync_free();

// A CUDA graph of the work queued on sieve's stream between begin_capture and end_capture, then
// replayed with one launch. Every block allocated during the capture comes from a private pool of
// the caching allocator that stays reserved while the graph lives (its kernels keep those
// addresses). The captured work must neither synchronise nor read per-step values from the host:
// they live in device memory the graph reads (see training/trainer.cpp).
class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void begin_capture();
  void end_capture();  // instantiates the graph
  void replay();
  bool ready() const;  // captured and instantiated
  void reset();        // destroys the graph and gives its pool back

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A named range on the profiler's timeline (NVTX; nsys and ncu show it); nothing on the CPU.
class ProfileRange {
 public:
  explicit ProfileRange(const char* name);
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;
};

// Matrix precision: fp32 (exact FMA, the parity default), tf32 (GPU tensor cores for conv/linear,
// PyTorch's conv default; fp32 on the CPU), bf16 (convolutions compute on bf16 copies of their
// inputs, with f32 results, master weights, BN statistics and optimiser state; on the CPU through
// oneDNN's AVX512-BF16 / AMX kernels, except that on a CPU without AMX the 3x3 convolutions that
// Winograd suits stay in f32 Winograd, as fast there and more precise: cpu::winograd_suits).
enum class Precision { fp32, tf32, bf16 };
Precision parse_precision(const std::string& name);
void set_precision(Precision p);
Precision precision();

// The CPU fast path (oneDNN convolutions, fused vectorised kernels) is on by default. Tests turn
// it off to run the readable reference implementation of every op, the fast path's oracle.
void set_cpu_fast_path(bool on);
bool cpu_fast_path();

// With the fast path, convolutions without bias whose output channels are a multiple of 16 write
// the blocked layout (Tensor::blocked) that oneDNN computes in, and batch norm, ReLU and the
// residual adds keep it: no reorder between layers. On by default; off for A/B measurements and
// tests of the plain path.
void set_cpu_blocked_layout(bool on);
bool cpu_blocked_layout();

// With the fast path, f32 convolutions that Winograd suits (cpu::winograd_suits: 3x3, stride 1,
// 32+ channels) use oneDNN's Winograd kernels, 2-2.5x faster than direct convolution there and
// with a few times its (small) rounding error. On by default; off for tests of the direct
// kernels, and for a whole run with the environment variable SIEVE_CPU_WINOGRAD=0.
void set_cpu_winograd(bool on);
bool cpu_winograd();

// With bf16, a batch norm whose input comes from a bf16 convolution writes that convolution's
// output gradient in bf16 itself (autograd::accept_bf16_grad), the very bits oneDNN's conversion
// would give, instead of f32 then converted. On by default where the CPU rounds to bf16 in one
// instruction (AVX512-BF16); off for the tests that compare the two, and for a whole run with
// the environment variable SIEVE_CPU_BF16_HANDOFF=0.
void set_cpu_bf16_handoff(bool on);
bool cpu_bf16_handoff();

}  // namespace sieve
