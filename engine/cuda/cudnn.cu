// Every cuDNN call of sieve lives in this translation unit. Convolutions go through the legacy
// cudnnConvolutionForward / BackwardData / BackwardFilter entry points: deprecated in cuDNN 9 but
// still shipped, and this file is the one place to swap them for the graph API.
//
// A plan per (shape, stride, padding, groups, math type) holds the descriptors and, per
// direction, the algorithm chosen from cuDNN's heuristic list on the first call of a shape
// (deterministic: no timing, see run_direction). Workspaces are Tensors from the caching
// allocator.
#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <vector>

#include "engine/cuda/context.h"
#include "engine/cuda/conv2d_cuda.h"
#include "engine/device.h"
#include "engine/tensor.h"

namespace sieve::cuda {

namespace {

// The most workspace an algorithm may use; algorithms needing more are skipped.
constexpr size_t kMaxWorkspaceBytes = size_t(1) << 30;

// fp32: plain FMA, no TF32, so the GPU matches the CPU reference at fp32 tolerances. Otherwise
// cuDNN's default math, which runs fp32 convolutions on TF32 tensor cores (PyTorch's default).
cudnnMathType_t math_type() {
  return precision() == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

// An algorithm chosen for one direction, with its math type and workspace.
template <class Perf>
struct Choice {
  decltype(Perf::algo) algo;
  cudnnMathType_t math;
  size_t workspace;
};

struct Plan {
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;  // what precision() asked for
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::optional<Choice<cudnnConvolutionFwdAlgoPerf_t>> forward;
  std::optional<Choice<cudnnConvolutionBwdDataAlgoPerf_t>> backward_data;
  std::optional<Choice<cudnnConvolutionBwdFilterAlgoPerf_t>> backward_filter;
};

std::string describe(const ConvShape& s) {
  return cat("input (", s.n, ", ", s.c, ", ", s.h, ", ", s.w, "), weight (", s.k, ", ",
             s.c / s.groups, ", ", s.r, ", ", s.s, "), stride ", s.stride, ", padding ", s.padding,
             ", groups ", s.groups);
}

Plan make_plan(const ConvShape& s, cudnnMathType_t math) {
  Plan p;
  p.math = math;
  SIEVE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  SIEVE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  SIEVE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  SIEVE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  SIEVE_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c, s.h, s.w));
  SIEVE_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.k, s.p, s.q));
  SIEVE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.k,
                                               s.c / s.groups, s.r, s.s));
  // Deep-learning "convolution" is cross-correlation (the kernel is not flipped).
  SIEVE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, s.padding, s.padding, s.stride, s.stride,
                                                    1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  SIEVE_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, s.groups));
  SIEVE_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, math));
  int n = 0, k = 0, oh = 0, ow = 0;
  SIEVE_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv, p.x, p.w, &n, &k, &oh, &ow));
  SIEVE_CHECK(n == s.n && k == s.k && oh == s.p && ow == s.q, "conv2d: cuDNN computes output (", n,
              ", ", k, ", ", oh, ", ", ow, ") but sieve expects (", s.n, ", ", s.k, ", ", s.p, ", ",
              s.q, ") for ", describe(s));
  return p;
}

// Guards the plans and the shared handle: a convolution holds it from lookup to launch.
std::mutex& plans_mutex() {
  static std::mutex m;
  return m;
}

// Plans are created on first use and live as long as the process: they are never destroyed,
// because cuDNN may be torn down before static destructors run.
Plan& plan_for(const ConvShape& s) {
  const cudnnMathType_t math = math_type();
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int>;
  static auto* plans = new std::map<Key, Plan>();
  const Key key{s.n, s.c, s.h, s.w, s.k, s.r, s.s, s.p, s.q, s.stride, s.padding, s.groups, int(math)};
  auto it = plans->find(key);
  if (it == plans->end()) it = plans->emplace(key, make_plan(s, math)).first;
  return it->second;
}

Tensor workspace(size_t bytes) {
  return Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, Device::cuda);
}

// Runs one direction of a plan, choosing its algorithm first if this is the first call.
//   list(perf, capacity, &count): cuDNN's heuristic list of algorithms, best expected first
//   run(algo, workspace, bytes): the convolution itself
// The choice reads only the heuristic list, never a timing benchmark (cudnnFind*), so every
// process on the same GPU and cuDNN picks the same algorithm: two runs, or a run and its resumed
// continuation, end with the same weights. At fp32 only FMA entries are usable (TF32 would break
// parity with the CPU); deterministic algorithms come first, the first usable one of any kind is
// the fallback when no deterministic one works.
template <class Perf, class List, class Run>
void run_direction(Plan& plan, std::optional<Choice<Perf>>& choice, int capacity, const char* direction,
                   const ConvShape& s, List list, Run run) {
  if (!choice) {
    std::vector<Perf> perf(static_cast<size_t>(capacity));
    int count = 0;
    list(perf.data(), capacity, &count);
    auto usable = [&](const Perf& r) {
      return r.status == CUDNN_STATUS_SUCCESS && r.memory <= kMaxWorkspaceBytes &&
             (plan.math != CUDNN_FMA_MATH || r.mathType == CUDNN_FMA_MATH);
    };
    auto ok = std::find_if(perf.begin(), perf.begin() + count,
                           [&](const Perf& r) { return usable(r) && r.determinism == CUDNN_DETERMINISTIC; });
    if (ok == perf.begin() + count) ok = std::find_if(perf.begin(), perf.begin() + count, usable);
    SIEVE_CHECK(ok != perf.begin() + count, "conv2d: cuDNN lists no usable ", direction, " algorithm for ",
                describe(s));
    choice = Choice<Perf>{ok->algo, ok->mathType, ok->memory};
  }
  SIEVE_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, choice->math));
  Tensor space = workspace(choice->workspace);
  run(choice->algo, space.raw(), choice->workspace);
}

}  // namespace

void conv2d_forward(const ConvShape& s, const float* x, const float* weight, float* y) {
  std::lock_guard<std::mutex> lock(plans_mutex());
  Plan& p = plan_for(s);
  const cudnnHandle_t h = cudnn();
  int capacity = 0;
  SIEVE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &capacity));
  run_direction(
      p, p.forward, capacity, "forward", s,
      [&](cudnnConvolutionFwdAlgoPerf_t* perf, int cap, int* count) {
        SIEVE_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, cap, count, perf));
      },
      [&](cudnnConvolutionFwdAlgo_t algo, void* ws, size_t bytes) {
        const float one = 1.0f, zero = 0.0f;
        SIEVE_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x, p.w, weight, p.conv, algo, ws,
                                                  bytes, &zero, p.y, y));
      });
}

void conv2d_backward_data(const ConvShape& s, const float* weight, const float* dy, float* dx) {
  std::lock_guard<std::mutex> lock(plans_mutex());
  Plan& p = plan_for(s);
  const cudnnHandle_t h = cudnn();
  int capacity = 0;
  SIEVE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &capacity));
  run_direction(
      p, p.backward_data, capacity, "backward-data", s,
      [&](cudnnConvolutionBwdDataAlgoPerf_t* perf, int cap, int* count) {
        SIEVE_CUDNN_CHECK(
            cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, cap, count, perf));
      },
      [&](cudnnConvolutionBwdDataAlgo_t algo, void* ws, size_t bytes) {
        const float one = 1.0f, zero = 0.0f;
        SIEVE_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, weight, p.y, dy, p.conv, algo,
                                                       ws, bytes, &zero, p.x, dx));
      });
}

void conv2d_backward_filter(const ConvShape& s, const float* x, const float* dy, float* dweight) {
  std::lock_guard<std::mutex> lock(plans_mutex());
  Plan& p = plan_for(s);
  const cudnnHandle_t h = cudnn();
  int capacity = 0;
  SIEVE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &capacity));
  run_direction(
      p, p.backward_filter, capacity, "backward-filter", s,
      [&](cudnnConvolutionBwdFilterAlgoPerf_t* perf, int cap, int* count) {
        SIEVE_CUDNN_CHECK(
            cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, cap, count, perf));
      },
      [&](cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t bytes) {
        const float one = 1.0f, zero = 0.0f;
        SIEVE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, dy, p.conv, algo, ws,
                                                         bytes, &zero, p.w, dweight));
      });
}

}  // namespace sieve::cuda
