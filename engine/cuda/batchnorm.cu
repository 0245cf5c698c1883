// Batch-norm kernels. Per-channel reductions run in two deterministic stages: a (C, S) grid where
// block (c, s) reduces the s-th of S equal chunks of channel c's N*HW elements, then one thread
// per channel combines its S partials in double, in order. The elementwise kernels are flat
// grid-stride loops over the (N, C, HW) tensor.
#include "engine/cuda/batchnorm_cuda.h"
#include "engine/cuda/context.h"
#include "engine/tensor.h"

namespace sieve::cuda {

namespace {

constexpr int kReduceThreads = 256;
// About this many elements per block, so that small channels use one block and a large channel
// (64 x 32 x 32 = 65536 elements) spreads over 16 blocks; S is capped to keep the final
// sequential combine short.
constexpr int64_t kElementsPerBlock = 4096;
constexpr int64_t kMaxSplits = 256;

// How channel elements are split over blocks: element j = n * HW + i of channel c lies at
// (n * C + c) * HW + i; block s covers j in [s * chunk, min((s + 1) * chunk, M)).
struct Split {
  int64_t C, HW, M, S, chunk;
};

Split split_for(int64_t N, int64_t C, int64_t HW) {
  const int64_t M = N * HW;
  int64_t S = (M + kElementsPerBlock - 1) / kElementsPerBlock;
  S = S < 1 ? 1 : (S > kMaxSplits ? kMaxSplits : S);
  return {C, HW, M, S, (M + S - 1) / S};
}

__device__ __forceinline__ int64_t channel_offset(const Split& sp, int64_t c, int64_t j) {
  return (j / sp.HW * sp.C + c) * sp.HW + j % sp.HW;
}

__device__ __forceinline__ int64_t chunk_count(const Split& sp, int64_t s) {
  const int64_t begin = s * sp.chunk, end = begin + sp.chunk < sp.M ? begin + sp.chunk : sp.M;
  return end > begin ? end - begin : 0;
}

// Chan et al.'s pairwise update: (n, mean, m2) absorbs (nb, mean_b, m2b); m2 = sum of squared
// deviations from the mean.
template <class F>
__device__ __forceinline__ void welford_combine(F& n, F& mean, F& m2, F nb, F mean_b, F m2b) {
  if (nb == F(0)) return;
  const F total = n + nb;
  const F delta = mean_b - mean;
  const F wb = nb / total;
  mean += delta * wb;
  m2 += m2b + delta * delta * n * wb;
  n = total;
}

// grid (C, S): partial mean and m2 of each chunk, at [c * S + s].
__global__ void batch_stats_partial_kernel(const float* x, Split sp, float* part_mean,
                                           float* part_m2) {
  __shared__ float sh_n[kReduceThreads], sh_mean[kReduceThreads], sh_m2[kReduceThreads];
  const int64_t c = blockIdx.x, s = blockIdx.y;
  const int64_t begin = s * sp.chunk, end = begin + chunk_count(sp, s);
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += kReduceThreads) {
    const float v = x[channel_offset(sp, c, j)];
    n += 1.0f;
    const float delta = v - mean;
    mean += delta / n;
    m2 += delta * (v - mean);
  }
  sh_n[threadIdx.x] = n;
  sh_mean[threadIdx.x] = mean;
  sh_m2[threadIdx.x] = m2;
  __syncthreads();
  for (int stride = kReduceThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const int t = threadIdx.x, u = t + stride;
      welford_combine(sh_n[t], sh_mean[t], sh_m2[t], sh_n[u], sh_mean[u], sh_m2[u]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    part_mean[c * sp.S + s] = sh_mean[0];
    part_m2[c * sp.S + s] = sh_m2[0];
  }
}

// One thread per channel: combine the S partials, write mean / invstd, update running stats.
__global__ void batch_stats_final_kernel(const float* part_mean, const float* part_m2, Split sp,
                                         double eps, double momentum, float* mean, float* invstd,
                                         float* running_mean, float* running_var) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < sp.C;
       c += int64_t(gridDim.x) * blockDim.x) {
    double n = 0.0, mu = 0.0, m2 = 0.0;
    for (int64_t s = 0; s < sp.S; ++s)
      welford_combine(n, mu, m2, static_cast<double>(chunk_count(sp, s)),
                      static_cast<double>(part_mean[c * sp.S + s]),
                      static_cast<double>(part_m2[c * sp.S + s]));
    const double M = static_cast<double>(sp.M);
    const double var = m2 / M;
    mean[c] = static_cast<float>(mu);
    invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mu);
    running_var[c] =
        static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * M / (M - 1.0));
  }
}

__global__ void running_stats_kernel(const float* running_mean, const float* running_var, int64_t C,
                                     double eps, float* mean, float* invstd) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C;
       c += int64_t(gridDim.x) * blockDim.x) {
    mean[c] = running_mean[c];
    invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

__global__ void forward_kernel(const float* x, const float* mean, const float* invstd,
                               const float* weight, const float* bias, float* y, int64_t n,
                               int64_t C, int64_t HW, bool relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / HW % C;
    const float v = (x[i] - mean[c]) * invstd[c] * weight[c] + bias[c];
    y[i] = relu && v < 0.0f ? 0.0f : v;
  }
}

// The gradient reaching the normalisation: dy, or 0 where a fused ReLU clipped the output.
__device__ __forceinline__ float masked_grad(const float* y, const float* dy, int64_t i) {
  return y && !(y[i] > 0.0f) ? 0.0f : dy[i];
}

// grid (C, S): partial sum(g) and sum(g * xhat) of each chunk, at [c * S + s].
__global__ void backward_reduce_partial_kernel(const float* x, const float* y, const float* dy,
                                               const float* mean, const float* invstd, Split sp,
                                               float* part_g, float* part_g_xhat) {
  __shared__ float sh_g[kReduceThreads], sh_gx[kReduceThreads];
  const int64_t c = blockIdx.x, s = blockIdx.y;
  const int64_t begin = s * sp.chunk, end = begin + chunk_count(sp, s);
  const float mu = mean[c], istd = invstd[c];
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int64_t j = begin + threadIdx.x; j < end; j += kReduceThreads) {
    const int64_t i = channel_offset(sp, c, j);
    const float g = masked_grad(y, dy, i);
    sum_g += g;
    sum_gx += g * (x[i] - mu) * istd;
  }
  sh_g[threadIdx.x] = sum_g;
  sh_gx[threadIdx.x] = sum_gx;
  __syncthreads();
  for (int stride = kReduceThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      sh_g[threadIdx.x] += sh_g[threadIdx.x + stride];
      sh_gx[threadIdx.x] += sh_gx[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    part_g[c * sp.S + s] = sh_g[0];
    part_g_xhat[c * sp.S + s] = sh_gx[0];
  }
}

__global__ void backward_reduce_final_kernel(const float* part_g, const float* part_g_xhat,
                                             Split sp, float* sum_g, float* sum_g_xhat) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < sp.C;
       c += int64_t(gridDim.x) * blockDim.x) {
    double g = 0.0, gx = 0.0;
    for (int64_t s = 0; s < sp.S; ++s) {
      g += part_g[c * sp.S + s];
      gx += part_g_xhat[c * sp.S + s];
    }
    sum_g[c] = static_cast<float>(g);
    sum_g_xhat[c] = static_cast<float>(gx);
  }
}

__global__ void backward_input_kernel(const float* x, const float* y, const float* dy,
                                      const float* mean, const float* invstd, const float* weight,
                                      const float* sum_g, const float* sum_g_xhat, float* dx,
                                      int64_t n, int64_t C, int64_t HW, float inv_m,
                                      bool training) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / HW % C;
    const float g = masked_grad(y, dy, i);
    const float scale = weight[c] * invstd[c];
    if (training) {
      const float xhat = (x[i] - mean[c]) * invstd[c];
      dx[i] = scale * (g - sum_g[c] * inv_m - xhat * sum_g_xhat[c] * inv_m);
    } else {
      dx[i] = scale * g;
    }
  }
}

}  // namespace

void batchnorm_batch_stats(const float* x, int64_t N, int64_t C, int64_t HW, double eps,
                           double momentum, float* mean, float* invstd, float* running_mean,
                           float* running_var) {
  const Split sp = split_for(N, C, HW);
  // The chunk partials: part[0] = means, part[1] = m2s, each (C, S).
  const Tensor part = Tensor::empty({2, C, sp.S}, DType::f32, Device::cuda);
  float* part_mean = part.data<float>();
  float* part_m2 = part_mean + C * sp.S;
  batch_stats_partial_kernel<<<dim3(static_cast<unsigned>(C), static_cast<unsigned>(sp.S)),
                               kReduceThreads, 0, stream()>>>(x, sp, part_mean, part_m2);
  SIEVE_KERNEL_CHECK();
  batch_stats_final_kernel<<<blocks_for(C), kThreads, 0, stream()>>>(
      part_mean, part_m2, sp, eps, momentum, mean, invstd, running_mean, running_var);
  SIEVE_KERNEL_CHECK();
}

void batchnorm_running_stats(const float* running_mean, const float* running_var, int64_t C,
                             double eps, float* mean, float* invstd) {
  running_stats_kernel<<<blocks_for(C), kThreads, 0, stream()>>>(running_mean, running_var, C, eps,
                                                                 mean, invstd);
  SIEVE_KERNEL_CHECK();
}

void batchnorm_forward(const float* x, const float* mean, const float* invstd, const float* weight,
                       const float* bias, float* y, int64_t N, int64_t C, int64_t HW, bool relu) {
  const int64_t n = N * C * HW;
  forward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x, mean, invstd, weight, bias, y, n, C,
                                                           HW, relu);
  SIEVE_KERNEL_CHECK();
}

void batchnorm_backward_reduce(const float* x, const float* y, const float* dy, const float* mean,
                               const float* invstd, int64_t N, int64_t C, int64_t HW, float* sum_g,
                               float* sum_g_xhat) {
  const Split sp = split_for(N, C, HW);
  // part[0] = sum(g), part[1] = sum(g * xhat), each (C, S).
  const Tensor part = Tensor::empty({2, C, sp.S}, DType::f32, Device::cuda);
  float* part_g = part.data<float>();
  float* part_g_xhat = part_g + C * sp.S;
  backward_reduce_partial_kernel<<<dim3(static_cast<unsigned>(C), static_cast<unsigned>(sp.S)),
                                   kReduceThreads, 0, stream()>>>(x, y, dy, mean, invstd, sp,
                                                                  part_g, part_g_xhat);
  SIEVE_KERNEL_CHECK();
  backward_reduce_final_kernel<<<blocks_for(C), kThreads, 0, stream()>>>(part_g, part_g_xhat, sp,
                                                                         sum_g, sum_g_xhat);
  SIEVE_KERNEL_CHECK();
}

void batchnorm_backward_input(const float* x, const float* y, const float* dy, const float* mean,
                              const float* invstd, const float* weight, const float* sum_g,
                              const float* sum_g_xhat, float* dx, int64_t N, int64_t C, int64_t HW,
                              bool training) {
  const int64_t n = N * C * HW;
  const float inv_m = static_cast<float>(1.0 / static_cast<double>(N * HW));
  backward_input_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      x, y, dy, mean, invstd, weight, sum_g, sum_g_xhat, dx, n, C, HW, inv_m, training);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
