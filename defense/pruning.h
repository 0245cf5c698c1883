// Iterative magnitude pruning (IMP) masks over the flat parameter buffer (engine/parameters.h):
// which tensors are prunable, the next mask from the current weights, and the sparsity a mask
// leaves. Applying a mask is the optimiser's job (Sgd::set_mask keeps pruned weights at 0);
// rewinding is a copy of the saved values.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/parameters.h"

namespace sieve {

enum class PruneScope { per_layer, global };  // the study's code; Frankle et al. (open_lth)
PruneScope parse_prune_scope(const std::string& name);  // "per_layer" | "global"

// Positions in p.names of the prunable tensors: every Conv2d and Linear weight (ndim >= 2),
// never a batch-norm parameter or a bias.
std::vector<size_t> prunable_parameters(const FlatParameters& p);

// The next mask (flat 0/1, the dtype, size and device of p.values) from the current weights:
// the weights still alive under previous_mask (undefined = all alive) whose |w| is at or below
// q, the `fraction` quantile (0 < fraction < 1) of the surviving |w| (alive and |w| > 1e-9, as
// the study counts them), are pruned as well; pruned
// entries stay pruned, non-prunable entries are 1. q is torch.quantile's (linear
// interpolation at rank r = fraction * (n - 1), both computed in the values' dtype), the
// study's semantics: of n distinct magnitudes floor(r) + 1 are pruned, e.g. 30 of 100, then 21
// of the 70 left (49% alive after two rounds at 0.3). per_layer: q per prunable tensor over its
// alive weights; global: one q over the alive weights of all prunable tensors.
Tensor magnitude_prune(const FlatParameters& p, const Tensor& previous_mask, double fraction, PruneScope scope);

// Alive weights per prunable tensor and overall.
struct SparsityReport {
  std::vector<std::string> names;
  std::vector<int64_t> kept, total;
  double kept_fraction = 1.0;  // sum kept / sum total
};
SparsityReport sparsity(const FlatParameters& p, const Tensor& mask);

}  // namespace sieve
