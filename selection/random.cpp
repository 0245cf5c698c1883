// Random selection, and what every selector shares: protocol names, per-class budgets, ranking
// by score, the models the score-based selectors train and the logit gradient they read.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/py_random.h"
#include "engine/rng.h"
#include "selection/selection.h"

namespace sieve {

Protocol parse_protocol(const std::string& name) {
  if (name == "seed") return Protocol::seed;
  if (name == "reference") return Protocol::reference;
  fail("--protocol: unknown protocol '", name, "' (known: seed, reference)");
}

std::vector<int64_t> class_budgets(const std::vector<int64_t>& labels, int64_t num_classes, int64_t k) {
  const int64_t n = static_cast<int64_t>(labels.size());
  SIEVE_CHECK(num_classes >= 1, "class_budgets: num_classes must be >= 1, got ", num_classes);
  SIEVE_CHECK(k >= 0 && k <= n, "class_budgets: k = ", k, " outside [0, ", n, "]");
  std::vector<int64_t> counts(static_cast<size_t>(num_classes), 0);
  for (int64_t y : labels) {
    SIEVE_CHECK(y >= 0 && y < num_classes, "class_budgets: label ", y, " outside [0, ", num_classes, ")");
    ++counts[y];
  }
  for (int64_t& c : counts) c = k * c / n;
  return counts;
}

Selection select_random(int64_t n, int64_t k, uint64_t seed, Protocol protocol) {
  SIEVE_CHECK(k >= 0 && k <= n, "select_random: k = ", k, " outside [0, ", n, "]");
  std::vector<int64_t> items;
  if (protocol == Protocol::seed) {
    items = PyRandom(seed).sample(n, k);
  } else {
    items.resize(static_cast<size_t>(n));
    std::iota(items.begin(), items.end(), int64_t{0});
    Generator gen(seed);
    for (int64_t i = 0; i < k; ++i) std::swap(items[i], items[i + static_cast<int64_t>(gen.below(n - i))]);
    items.resize(static_cast<size_t>(k));
  }
  std::sort(items.begin(), items.end());
  return {items, {}, {}};
}

Selection keep_by_score(const std::vector<double>& scores, int64_t k, bool highest) {
  const int64_t n = static_cast<int64_t>(scores.size());
  SIEVE_CHECK(k >= 0 && k <= n, "keep_by_score: k = ", k, " outside [0, ", n, "]");
  for (int64_t i = 0; i < n; ++i) SIEVE_CHECK(!std::isnan(scores[i]), "keep_by_score: score ", i, " is NaN");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return highest ? scores[a] > scores[b] : scores[a] < scores[b]; });
  ScoreCut cut;
  cut.zero_scores = std::count(scores.begin(), scores.end(), 0.0);
  if (k > 0) {
    cut.cut_score = scores[order[k - 1]];
    cut.tied_at_cut = std::count(scores.begin(), scores.end(), cut.cut_score);
    cut.tied_kept = std::count_if(order.begin(), order.begin() + k, [&](int64_t i) { return scores[i] == cut.cut_score; });
  }
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  return {order, {}, cut};
}

ScoringModel scoring_model(const SelectionContext& c, int64_t epochs, int64_t run) {
  SIEVE_CHECK(static_cast<bool>(c.make_model), "selection: no model factory given");
  SIEVE_CHECK(c.k >= 1 && c.k <= c.train.size(), "selection: subset size ", c.k, " outside [1, ", c.train.size(),
              "]");
  SIEVE_CHECK(epochs >= 1, "selection: the scoring model needs >= 1 epoch, got ", epochs);
  TrainConfig cfg = c.base;
  cfg.epochs = epochs;
  cfg.seed = c.base.seed + static_cast<uint64_t>(run);
  cfg.checkpoint.clear();  // the scores gathered by the hooks would not survive a resume
  if (c.protocol == Protocol::seed) {
    cfg.schedule = "cosine";
    cfg.t_max = epochs;
  }
  return {c.make_model(cfg.seed), cfg};
}

uint64_t scoring_augment_seed(uint64_t seed, int64_t epoch) {
  return seed ^ (0x53434f5245ull << 20) ^ (static_cast<uint64_t>(epoch) + 1) * 0x9E3779B97F4A7C15ull;
}

std::vector<double> logit_gradients(const Tensor& logits, const std::vector<int64_t>& labels) {
  check_ndim("logit_gradients", logits, "logits", 2);
  const int64_t n = logits.dim(0), classes = logits.dim(1);
  SIEVE_CHECK(static_cast<int64_t>(labels.size()) == n, "logit_gradients: ", labels.size(), " labels for logits ",
              shape_str(logits.shape()));
  std::vector<double> g = logits.to_double();
  for (int64_t i = 0; i < n; ++i) {
    SIEVE_CHECK(labels[i] >= 0 && labels[i] < classes, "logit_gradients: label ", labels[i], " of row ", i,
                " outside [0, ", classes, ")");
    double* row = g.data() + i * classes;
    const double top = *std::max_element(row, row + classes);
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += (row[j] = std::exp(row[j] - top));
    for (int64_t j = 0; j < classes; ++j) row[j] /= sum;
    row[labels[i]] -= 1.0;
  }
  return g;
}

}  // namespace sieve
