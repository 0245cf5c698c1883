// CRAIG (Mirzasoleiman et al. 2020) per class, in the study's variant (a top-k by alignment of
// normalised last-layer gradients with their class sum; no facility location, no weights) and
// the paper's (facility location on the logit gradients, weights = cluster sizes).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "selection/facility_location.h"
#include "selection/selection.h"

namespace sieve {

std::vector<double> craig_seed_scores(const Tensor& features, const Tensor& logits, const std::vector<int64_t>& labels,
                                      int64_t num_classes) {
  check_ndim("craig", features, "features", 2);
  check_ndim("craig", logits, "logits", 2);
  const int64_t n = features.dim(0), d = features.dim(1), classes = logits.dim(1);
  SIEVE_CHECK(logits.dim(0) == n, "craig: features ", shape_str(features.shape()), " and logits ",
              shape_str(logits.shape()), " differ in rows");
  SIEVE_CHECK(classes == num_classes, "craig: logits ", shape_str(logits.shape()), " for ", num_classes, " classes");
  const std::vector<double> g = logit_gradients(logits, labels);  // checks the labels
  const std::vector<double> f = features.to_double();
  // g_i = a_i b_i^T with a_i = g row i (C), b_i = f row i (D), so ||g_i|| = ||a_i|| ||b_i|| and
  // g_hat_i . S = a_i^T S b_i / (||a_i|| ||b_i||) with S (C x D) the class sum of the g_hat.
  std::vector<double> inv_norm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double ga = 0, fb = 0;
    for (int64_t p = 0; p < classes; ++p) ga += g[i * classes + p] * g[i * classes + p];
    for (int64_t q = 0; q < d; ++q) fb += f[i * d + q] * f[i * d + q];
    // The study's g / (||g|| + 1e-8): a tiny gradient stays tiny instead of becoming a unit vector.
    inv_norm[i] = 1.0 / (std::sqrt(ga) * std::sqrt(fb) + 1e-8);
  }
  std::vector<double> sums(static_cast<size_t>(num_classes * classes * d), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double* s = sums.data() + labels[i] * classes * d;
    for (int64_t p = 0; p < classes; ++p) {
      const double a = g[i * classes + p] * inv_norm[i];
      for (int64_t q = 0; q < d; ++q) s[p * d + q] += a * f[i * d + q];
    }
  }
  std::vector<double> scores(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double* s = sums.data() + labels[i] * classes * d;
    double dot = 0;
    for (int64_t p = 0; p < classes; ++p) {
      double row = 0;
      for (int64_t q = 0; q < d; ++q) row += s[p * d + q] * f[i * d + q];
      dot += g[i * classes + p] * row;
    }
    scores[i] = dot * inv_norm[i];
  }
  return scores;
}

Selection select_craig(const SelectionContext& c) {
  SIEVE_CHECK(c.craig_epochs >= 0, "craig: pre-training epochs must be >= 0, got ", c.craig_epochs);
  const int64_t epochs = c.craig_epochs > 0 ? c.craig_epochs : (c.protocol == Protocol::seed ? 10 : 20);
  const std::vector<int64_t>& labels = c.train.labels;
  const int64_t n = c.train.size();
  const std::vector<int64_t> budgets = class_budgets(labels, c.train.num_classes, c.k);
  std::vector<std::vector<int64_t>> members(budgets.size());
  for (int64_t i = 0; i < n; ++i) members[labels[i]].push_back(i);

  ScoringModel s = scoring_model(c, epochs, 0);
  if (c.protocol == Protocol::seed) {
    // GradualWarmupScheduler(multiplier 1, total_epoch = epochs): the whole run is the warm-up.
    s.config.schedule = "warmup_cosine";
    s.config.warmup_epochs = epochs;
  }
  Trainer t(*s.model, c.train, nullptr, s.config);
  t.fit();
  std::vector<std::pair<int64_t, float>> picked;  // (index, weight)
  if (c.protocol == Protocol::seed) {
    Tensor features, logits;  // (N, D), (N, C) on the host
    t.for_each_batch(c.train, true, scoring_augment_seed(c.base.seed, epochs),
                     [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
                       if (!features.defined()) {
                         features = Tensor::empty({n, out.features.dim(1)}, out.features.dtype());
                         logits = Tensor::empty({n, out.logits.dim(1)}, out.logits.dtype());
                       }
                       const int64_t first = idx.front();  // batches are consecutive index ranges
                       features.slice(first * out.features.dim(1), out.features.shape()).copy_(out.features);
                       logits.slice(first * out.logits.dim(1), out.logits.shape()).copy_(out.logits);
                     });
    const std::vector<double> scores = craig_seed_scores(features, logits, labels, c.train.num_classes);
    for (size_t cls = 0; cls < members.size(); ++cls) {
      std::vector<int64_t> order = members[cls];
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
      for (int64_t r = 0; r < budgets[cls]; ++r) picked.push_back({order[r], 0.0f});
    }
  } else {
    const Trainer::Extraction e = t.extract(c.train);
    const std::vector<double> g = logit_gradients(e.logits, labels);
    const int64_t classes = e.logits.dim(1);
    for (size_t cls = 0; cls < members.size(); ++cls) {
      if (budgets[cls] == 0) continue;
      const std::vector<int64_t>& rows = members[cls];
      std::vector<float> points(rows.size() * static_cast<size_t>(classes));
      for (size_t r = 0; r < rows.size(); ++r)
        for (int64_t j = 0; j < classes; ++j) points[r * classes + j] = static_cast<float>(g[rows[r] * classes + j]);
      std::vector<float> weights;
      const std::vector<int64_t> chosen = facility_location_greedy(
          Tensor::from_vector(points, {static_cast<int64_t>(rows.size()), classes}, c.train.images.device()),
          budgets[cls], &weights);
      for (size_t k = 0; k < chosen.size(); ++k) picked.push_back({rows[chosen[k]], weights[k]});
    }
  }
  std::sort(picked.begin(), picked.end());
  Selection sel;
  for (const auto& [i, w] : picked) {
    sel.indices.push_back(i);
    if (c.protocol == Protocol::reference) sel.weights.push_back(w);
  }
  return sel;
}

}  // namespace sieve
