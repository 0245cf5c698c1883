// Kernels of engine/linalg: broadcast subtraction, row gathers, k-means assignment (one warp per
// point) and centre update, and the cuSOLVER eigensolver call.
#include <climits>

#include "engine/cuda/context.h"
#include "engine/cuda/linalg_cuda.h"

namespace sieve::cuda {

namespace {

constexpr int kWarp = 32;

__global__ void subtract_row_kernel(const float* x, const float* row, float* y, int64_t total,
                                    int64_t d) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = x[i] - row[i % d];
}

__global__ void gather_rows_kernel(const float* x, const int64_t* rows, float* y, int64_t total,
                                   int64_t d) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / d, j = i - r * d;
    y[i] = x[rows[r] * d + j];
  }
}

// One warp per point, so the warp's loads of a row coalesce: lane l sums dimensions l, l+32, ...
// and an xor butterfly leaves the full sum in every lane. Every lane adds the same pairs, only
// in swapped operand order, so all lanes hold the same value and take the same branch.
// blockDim.x must be a multiple of 32: whole warps walk the points together.
__global__ void kmeans_assign_kernel(const float* x, const float* centers, int64_t* assignment,
                                     float* distance, int64_t n, int64_t d, int64_t k) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * blockDim.x / kWarp;
  for (int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kWarp; i < n; i += warps) {
    const float* xi = x + i * d;
    float best = INFINITY;
    int64_t best_c = 0;
    for (int64_t c = 0; c < k; ++c) {
      const float* cc = centers + c * d;
      float s = 0.0f;
      for (int64_t j = lane; j < d; j += kWarp) {
        const float diff = xi[j] - cc[j];
        s += diff * diff;
      }
      for (int offset = kWarp / 2; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
      if (s < best) best = s, best_c = c;  // strict: the lower index keeps a tie
    }
    if (lane == 0) {
      assignment[i] = best_c;
      distance[i] = best;
    }
  }
}

// One thread per (cluster, dimension), consecutive threads on consecutive dimensions so the
// reads of each row coalesce; each walks all points in order, which keeps the sum deterministic.
__global__ void kmeans_update_kernel(const float* x, const int64_t* assignment, float* centers,
                                     int64_t n, int64_t d, int64_t k) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < k * d;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = t / d, j = t - c * d;
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (assignment[i] == c) {
        sum += x[i * d + j];
        ++count;
      }
    }
    if (count > 0) centers[t] = static_cast<float>(sum / static_cast<double>(count));
  }
}

}  // namespace

void subtract_row(const float* x, const float* row, float* y, int64_t n, int64_t d) {
  const int64_t total = n * d;
  if (total == 0) return;
  subtract_row_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(x, row, y, total, d);
  SIEVE_KERNEL_CHECK();
}

void gather_rows(const float* x, const int64_t* rows, float* y, int64_t count, int64_t d) {
  const int64_t total = count * d;
  if (total == 0) return;
  gather_rows_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(x, rows, y, total, d);
  SIEVE_KERNEL_CHECK();
}

void kmeans_assign(const float* x, const float* centers, int64_t* assignment, float* distance,
                   int64_t n, int64_t d, int64_t k) {
  if (n == 0) return;
  const int64_t threads = n * kWarp;  // one warp per point
  kmeans_assign_kernel<<<blocks_for(threads), kThreads, 0, stream()>>>(x, centers, assignment,
                                                                     distance, n, d, k);
  SIEVE_KERNEL_CHECK();
}

void kmeans_update(const float* x, const int64_t* assignment, float* centers, int64_t n, int64_t d,
                   int64_t k) {
  if (k * d == 0) return;
  kmeans_update_kernel<<<blocks_for(k * d), kThreads, 0, stream()>>>(x, assignment, centers, n, d, k);
  SIEVE_KERNEL_CHECK();
}

int64_t symmetric_eigen_workspace(const double* a, const double* w, int64_t n) {
  SIEVE_CHECK(n <= INT_MAX, "symmetric_eigen: size ", n, " exceeds cuSOLVER's 32-bit interface");
  int lwork = 0;
  SIEVE_CUSOLVER_CHECK(cusolverDnDsyevd_bufferSize(cusolver(), CUSOLVER_EIG_MODE_VECTOR,
                                                   CUBLAS_FILL_MODE_LOWER, int(n), a, int(n), w,
                                                   &lwork));
  return lwork;
}

void symmetric_eigen(double* a, double* w, int64_t n, double* work, int64_t lwork, int* info) {
  SIEVE_CHECK(n <= INT_MAX && lwork <= INT_MAX, "symmetric_eigen: size ", n,
              " exceeds cuSOLVER's 32-bit interface");
  SIEVE_CUSOLVER_CHECK(cusolverDnDsyevd(cusolver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER,
                                        int(n), a, int(n), w, work, int(lwork), info));
}

}  // namespace sieve::cuda
