// The trainer's per-step bookkeeping on the device: staging a step's inputs from the epoch's
// buffers and accounting its loss, so a step reads nothing from the host and a captured CUDA
// graph replays it unchanged.
#include <cmath>

#include "engine/cuda/context.h"
#include "training/step_cuda.h"

namespace sieve::cuda {

namespace {

__global__ void stage_step_kernel(const int64_t* step, int64_t batch_size, int64_t count, const int64_t* order,
                                  const int64_t* labels, const float* weights, const float* lrs,
                                  const int64_t* counter_base, int64_t* batch_indices, int64_t* batch_labels,
                                  float* batch_weights, int64_t* counter, float* lr) {
  const int64_t k = *step, first = k * batch_size;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    batch_indices[i] = order[first + i];
    batch_labels[i] = labels[first + i];
    if (weights) batch_weights[i] = weights[first + i];
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    *counter = *counter_base + first;
    *lr = lrs[k];
  }
}

__global__ void account_loss_kernel(const float* loss, int64_t count, int64_t* step, double* loss_sum,
                                    int64_t* halted, float* bad_loss) {
  const float l = *loss;
  if (!isfinite(l)) {
    if (*halted == 0) {
      *halted = 1 + *step;
      *bad_loss = l;
    }
  } else {
    *loss_sum += static_cast<double>(l) * static_cast<double>(count);
  }
  *step += 1;
}

}  // namespace

void stage_step(const int64_t* step, int64_t batch_size, int64_t count, const int64_t* order,
                const int64_t* labels, const float* weights, const float* lrs, const int64_t* counter_base,
                int64_t* batch_indices, int64_t* batch_labels, float* batch_weights, int64_t* counter,
                float* lr) {
  stage_step_kernel<<<blocks_for(count), kThreads, 0, stream()>>>(step, batch_size, count, order, labels, weights,
                                                                   lrs, counter_base, batch_indices, batch_labels,
                                                                   batch_weights, counter, lr);
  SIEVE_KERNEL_CHECK();
}

void account_loss(const float* loss, int64_t count, int64_t* step, double* loss_sum, int64_t* halted,
                  float* bad_loss) {
  account_loss_kernel<<<1, 1, 0, stream()>>>(loss, count, step, loss_sum, halted, bad_loss);
  SIEVE_KERNEL_CHECK();
}

}  // namespace sieve::cuda
