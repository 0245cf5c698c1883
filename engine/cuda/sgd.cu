// The fused SGD step: one grid-stride pass, each element's weight decay, momentum, Nesterov
// term, update and mask computed in registers (engine/sgd.h's sgd_update).
#include "engine/cuda/context.h"
#include "engine/cuda/sgd_cuda.h"

namespace sieve::cuda {

namespace {

__global__ void sgd_step_kernel(float* values, const float* grads, float* momentum_buffer,
                                const float* mask, const float* lr, const int64_t* halt, int64_t n,
                                SgdCoefficients k) {
  if (halt && *halt != 0) return;
  const float rate = *lr;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    values[i] = sgd_update(values[i], grads[i], mask ? mask[i] : 1.0f,
                           momentum_buffer ? momentum_buffer + i : nullptr, rate, k);
  }
}

}  // namespace

void sgd_step(float* values, const float* grads, float* momentum_buffer, const float* mask,
              const float* lr, const int64_t* halt, int64_t n, const SgdCoefficients& k) {
  if (n == 0) return;
  sgd_step_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(values, grads, momentum_buffer, mask,
                                                            lr, halt, n, k);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
