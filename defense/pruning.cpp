#include "defense/pruning.h"

#include <algorithm>
#include <cmath>

#include "engine/dispatch.h"

namespace sieve {

namespace {

// torch.quantile(values, fraction) with linear interpolation, every step in T as torch computes
// it for a T tensor. Reorders `values`.
template <class T>
T quantile(std::vector<T>& values, double fraction) {
  const int64_t n = static_cast<int64_t>(values.size());
  const T rank = static_cast<T>(fraction) * static_cast<T>(n - 1);
  const int64_t below = static_cast<int64_t>(rank);
  std::nth_element(values.begin(), values.begin() + below, values.end());
  const T lo = values[below];
  const T hi = below + 1 < n ? *std::min_element(values.begin() + below + 1, values.end()) : lo;
  const T w = rank - static_cast<T>(below);
  return w < T(0.5) ? lo + w * (hi - lo) : hi - (hi - lo) * (T(1) - w);  // at::lerp
}

template <class T>
std::vector<double> prune(const FlatParameters& p, const std::vector<double>& previous, double fraction,
                          PruneScope scope) {
  const std::vector<size_t> prunable = prunable_parameters(p);
  SIEVE_CHECK(!prunable.empty(), "magnitude_prune: the model has no prunable (conv or linear) weights");
  const std::vector<T> w = p.values.to_vector<T>();
  std::vector<double> mask(w.size(), 1.0);
  // Prunes the alive entries of tensors `group` at or below the quantile of their magnitudes.
  auto prune_group = [&](const std::vector<size_t>& group) {
    std::vector<T> alive;
    for (size_t k : group)
      for (int64_t e = p.offsets[k]; e < p.offsets[k] + numel(p.shapes[k]); ++e) {
        SIEVE_CHECK(std::isfinite(w[e]), "magnitude_prune: ", p.names[k], " holds a non-finite weight");
        mask[e] = previous[e];
        // The study's surviving weights: alive and non-zero (|w| > 1e-9). A near-zero weight
        // does not lower the quantile, yet it is pruned like any other at or below it.
        if (previous[e] != 0 && std::abs(w[e]) > T(1e-9)) alive.push_back(std::abs(w[e]));
      }
    if (alive.empty()) return;
    const T q = quantile(alive, fraction);
    for (size_t k : group)
      for (int64_t e = p.offsets[k]; e < p.offsets[k] + numel(p.shapes[k]); ++e)
        if (std::abs(w[e]) <= q) mask[e] = 0.0;
  };
  if (scope == PruneScope::global) prune_group(prunable);
  else
    for (size_t k : prunable) prune_group({k});
  return mask;
}

}  // namespace

PruneScope parse_prune_scope(const std::string& name) {
  if (name == "per_layer") return PruneScope::per_layer;
  if (name == "global") return PruneScope::global;
  fail("--prune-scope: unknown scope '", name, "' (known: per_layer, global)");
}

std::vector<size_t> prunable_parameters(const FlatParameters& p) {
  std::vector<size_t> out;
  for (size_t k = 0; k < p.shapes.size(); ++k)
    if (p.shapes[k].size() >= 2) out.push_back(k);
  return out;
}

Tensor magnitude_prune(const FlatParameters& p, const Tensor& previous_mask, double fraction, PruneScope scope) {
  SIEVE_CHECK(fraction > 0 && fraction < 1, "magnitude_prune: fraction must be in (0, 1), got ", fraction);
  const int64_t total = p.values.numel();
  std::vector<double> previous(static_cast<size_t>(total), 1.0);
  if (previous_mask.defined()) {
    SIEVE_CHECK(previous_mask.numel() == total, "magnitude_prune: mask of ", previous_mask.numel(),
                " entries for ", total, " parameter values");
    previous = previous_mask.to_double();
    for (double m : previous) SIEVE_CHECK(m == 0.0 || m == 1.0, "magnitude_prune: mask entry ", m, " is not 0 or 1");
  }
  std::vector<double> mask;
  dispatch_float("magnitude_prune", p.values.dtype(),
                 [&](auto tag) { mask = prune<decltype(tag)>(p, previous, fraction, scope); });
  return Tensor::from_vector(mask, {total}).to(p.values.dtype()).to(p.values.device());
}

SparsityReport sparsity(const FlatParameters& p, const Tensor& mask) {
  SIEVE_CHECK(mask.numel() == p.values.numel(), "sparsity: mask of ", mask.numel(), " entries for ",
              p.values.numel(), " parameter values");
  const std::vector<double> m = mask.to_double();
  SparsityReport r;
  int64_t kept = 0, total = 0;
  for (size_t k : prunable_parameters(p)) {
    const int64_t n = numel(p.shapes[k]);
    const int64_t alive = std::count_if(m.begin() + p.offsets[k], m.begin() + p.offsets[k] + n,
                                        [](double v) { return v != 0.0; });
    r.names.push_back(p.names[k]);
    r.kept.push_back(alive);
    r.total.push_back(n);
    kept += alive, total += n;
  }
  if (total > 0) r.kept_fraction = static_cast<double>(kept) / static_cast<double>(total);
  return r;
}

}  // namespace sieve
