// Weight initialisers with PyTorch's distributions (torch.nn.init and the default Conv2d/Linear
// init), drawn from a sieve::Generator on the CPU and copied to the tensor's device. Element i
// of a draw uses counter gen.reserve(numel) + i, so a seed gives the same values everywhere.
#pragma once
#include <cstdint>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace sieve {

// For a weight (out, in, k...) of a conv or linear layer; at least 2-d.
int64_t fan_in(const Shape& weight_shape);   // shape[1] * prod(shape[2:])
int64_t fan_out(const Shape& weight_shape);  // shape[0] * prod(shape[2:])

// U(-bound, bound), bound = sqrt(6 / ((1 + a^2) * fan_in)). PyTorch's default Conv2d/Linear
// weight init is a = sqrt(5), which gives bound = 1 / sqrt(fan_in).
void kaiming_uniform_(const Tensor& w, double a, Generator& gen);
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default Conv2d/Linear bias init.
void default_bias_init_(const Tensor& b, int64_t fan_in, Generator& gen);
// N(0, sqrt(2 / fan_out)): kaiming_normal_(mode='fan_out', nonlinearity='relu').
void kaiming_normal_fan_out_relu_(const Tensor& w, Generator& gen);
void uniform_(const Tensor& w, double lo, double hi, Generator& gen);
void normal_(const Tensor& w, double mean, double std, Generator& gen);
void constant_(const Tensor& w, double value);

}  // namespace sieve
