// CUDA kernels of the trainer's sync-free step (training/trainer.cpp). Defined in step.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// Step k = *step of the epoch: copies entries [k * batch_size, k * batch_size + count) of the
// epoch's order, labels and loss weights (null: none) into the batch buffers, and sets the
// step's Philox counter (*counter_base + k * batch_size) and learning rate (lrs[k]).
void stage_step(const int64_t* step, int64_t batch_size, int64_t count, const int64_t* order,
                const int64_t* labels, const float* weights, const float* lrs, const int64_t* counter_base,
                int64_t* batch_indices, int64_t* batch_labels, float* batch_weights, int64_t* counter,
                float* lr);

// After the step's loss: the first non-finite one sets *halted = 1 + its step and *bad_loss
// (the optimiser then changes nothing), a finite one adds loss * count to *loss_sum; the step
// counter advances.
void account_loss(const float* loss, int64_t count, int64_t* step, double* loss_sum, int64_t* halted,
                  float* bad_loss);

}  // namespace sieve::cuda
