// Budgets, ranking and detection quality, shared by every defense.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "defense/defense.h"
#include "engine/error.h"

namespace sieve {

int64_t removal_budget(double removal_factor, double poison_fraction, int64_t n) {
  SIEVE_CHECK(removal_factor >= 0 && poison_fraction >= 0, "removal budget: negative factor or fraction");
  const double b = std::round(removal_factor * poison_fraction * static_cast<double>(n));
  return std::clamp<int64_t>(static_cast<int64_t>(b), 0, n);
}

namespace {
// Score order with NaN lowest; used for ranking and AUROC alike.
double key(double s) { return std::isnan(s) ? -INFINITY : s; }
}  // namespace

std::vector<int64_t> top_suspicious(const std::vector<double>& scores, int64_t count) {
  const int64_t n = static_cast<int64_t>(scores.size());
  SIEVE_CHECK(count >= 0 && count <= n, "top_suspicious: ", count, " of ", n, " samples");
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return key(scores[a]) > key(scores[b]); });
  idx.resize(static_cast<size_t>(count));
  return idx;
}

DetectionMetrics detection_metrics(const std::vector<double>& scores, const std::vector<uint8_t>& is_poison,
                                   int64_t budget) {
  SIEVE_CHECK(scores.size() == is_poison.size(), "detection metrics: ", scores.size(), " scores for ",
              is_poison.size(), " samples");
  DetectionMetrics m;
  m.budget = budget;
  for (uint8_t p : is_poison) m.poisons += p;
  for (int64_t i : top_suspicious(scores, budget)) m.removed_poisons += is_poison[i];
  m.recall = m.poisons ? static_cast<double>(m.removed_poisons) / static_cast<double>(m.poisons) : 1.0;
  m.precision = budget ? static_cast<double>(m.removed_poisons) / static_cast<double>(budget) : 0.0;
  // AUROC = P(score of a poison > score of a clean sample), ties half: Mann-Whitney U from ranks.
  const int64_t n = static_cast<int64_t>(scores.size()), neg = n - m.poisons;
  if (m.poisons == 0 || neg == 0) return m;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return key(scores[a]) < key(scores[b]); });
  double rank_sum = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j < n && key(scores[idx[j]]) == key(scores[idx[i]])) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + j + 1);  // ranks i+1..j averaged
    for (int64_t k = i; k < j; ++k)
      if (is_poison[idx[k]]) rank_sum += mid_rank;
    i = j;
  }
  const double pos = static_cast<double>(m.poisons);
  m.auroc = (rank_sum - pos * (pos + 1) / 2) / (pos * static_cast<double>(neg));
  return m;
}

}  // namespace sieve
