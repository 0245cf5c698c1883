// Facility-location kernels: a tiled pairwise-distance kernel with a block max, the marginal
// gains (one block per candidate row, coalesced over the row), the coverage update after a
// choice and the assignment of every point to its most similar chosen point.
#include <algorithm>
#include <cmath>

#include "engine/cuda/context.h"
#include "selection/facility_location_cuda.h"

namespace sieve::cuda {

namespace {

constexpr int kTile = 16;   // a block computes a kTile x kTile tile of the distance matrix
constexpr int kChunk = 32;  // coordinates staged in shared memory per step

// dist (m, m) with dist[i * m + j] = ||x_i - x_j||; *max_bits = max over all entries as the bit
// pattern of a non-negative float (integer order = float order there), +inf for non-finite
// points. Both (i, j) and (j, i) sum the same squared differences in the same order, so the
// matrix is exactly symmetric and its diagonal exactly 0.
__global__ void distance_kernel(const float* x, int64_t m, int64_t d, float* dist, int* max_bits) {
  __shared__ float rows_i[kTile][kChunk + 1];  // +1: no bank conflicts on column reads
  __shared__ float rows_j[kTile][kChunk + 1];
  __shared__ float block_max[kTile * kTile];
  const int t = threadIdx.y * kTile + threadIdx.x;
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  const int64_t i = i0 + threadIdx.y, j = j0 + threadIdx.x;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < d; k0 += kChunk) {
    for (int e = t; e < kTile * kChunk; e += kTile * kTile) {
      const int r = e / kChunk, c = e % kChunk;
      const int64_t k = k0 + c;
      rows_i[r][c] = (i0 + r < m && k < d) ? x[(i0 + r) * d + k] : 0.0f;
      rows_j[r][c] = (j0 + r < m && k < d) ? x[(j0 + r) * d + k] : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < kChunk; ++c) {
      const float diff = rows_i[threadIdx.y][c] - rows_j[threadIdx.x][c];
      acc = fmaf(diff, diff, acc);
    }
    __syncthreads();
  }
  const bool inside = i < m && j < m;
  const float v = sqrtf(acc);
  if (inside) dist[i * m + j] = v;
  block_max[t] = !inside ? 0.0f : (isfinite(v) ? v : INFINITY);
  __syncthreads();
  for (int s = kTile * kTile / 2; s > 0; s >>= 1) {
    if (t < s) block_max[t] = fmaxf(block_max[t], block_max[t + s]);
    __syncthreads();
  }
  if (t == 0) atomicMax(max_bits, __float_as_int(block_max[0]));
}

__global__ void similarity_kernel(float* dist, int64_t n, const float* max_dist) {
  const float top = *max_dist;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    dist[e] = top - dist[e];
}

// Sum over the block; the result is valid in thread 0. partial: blockDim.x / 32 floats.
__device__ float block_sum(float v, float* partial) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = 0.0f;
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? partial[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  __syncthreads();  // partial is reused by the next row
  return v;
}

__global__ void gains_kernel(const float* sim, const float* coverage, int64_t m, float* gains) {
  __shared__ float partial[kThreads / 32];
  for (int64_t j = blockIdx.x; j < m; j += gridDim.x) {
    const float* row = sim + j * m;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < m; i += blockDim.x) s += fmaxf(row[i] - coverage[i], 0.0f);
    s = block_sum(s, partial);
    if (threadIdx.x == 0) gains[j] = s;
  }
}

__global__ void cover_kernel(const float* row, int64_t m, float* coverage) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m; i += int64_t(gridDim.x) * blockDim.x)
    coverage[i] = fmaxf(coverage[i], row[i]);
}

// One thread per point; for each chosen k the warp reads consecutive columns of row chosen[k].
__global__ void assign_kernel(const float* sim, int64_t m, const int64_t* chosen, int64_t count,
                              int64_t* assignment) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m; i += int64_t(gridDim.x) * blockDim.x) {
    float best = sim[chosen[0] * m + i];
    int64_t arg = 0;
    for (int64_t k = 1; k < count; ++k) {
      const float v = sim[chosen[k] * m + i];
      if (v > best) best = v, arg = k;
    }
    assignment[i] = arg;
  }
}

}  // namespace

void facility_location_similarity(const float* points, int64_t m, int64_t d, float* sim, float* max_dist) {
  SIEVE_CUDA_CHECK(cudaMemsetAsync(max_dist, 0, sizeof(float), stream()));
  const unsigned tiles = static_cast<unsigned>((m + kTile - 1) / kTile);
  distance_kernel<<<dim3(tiles, tiles), dim3(kTile, kTile), 0, stream()>>>(points, m, d, sim,
                                                                          reinterpret_cast<int*>(max_dist));
  SIEVE_KERNEL_CHECK();
  similarity_kernel<<<blocks_for(m * m), kThreads, 0, stream()>>>(sim, m * m, max_dist);
  SIEVE_KERNEL_CHECK();
}

void facility_location_gains(const float* sim, const float* coverage, int64_t m, float* gains) {
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(m, 1 << 20));
  gains_kernel<<<blocks, kThreads, 0, stream()>>>(sim, coverage, m, gains);
  SIEVE_KERNEL_CHECK();
}

void facility_location_cover(const float* sim, int64_t m, int64_t j, float* coverage) {
  cover_kernel<<<blocks_for(m), kThreads, 0, stream()>>>(sim + j * m, m, coverage);
  SIEVE_KERNEL_CHECK();
}

void facility_location_assign(const float* sim, int64_t m, const int64_t* chosen, int64_t count,
                              int64_t* assignment) {
  assign_kernel<<<blocks_for(m), kThreads, 0, stream()>>>(sim, m, chosen, count, assignment);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
