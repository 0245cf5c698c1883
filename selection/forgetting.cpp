// Forgetting events (Toneva et al. 2019): how often a sample goes from classified correctly to
// incorrectly, observed once per epoch on augmented inputs in the study's variant (keep the
// least forgotten) or at every minibatch presentation in the paper's (keep the most forgotten,
// never-learned samples first).
#include <algorithm>

#include "selection/selection.h"

namespace sieve {

namespace {

// Whether each row's argmax (the first maximum on ties) is its sample's label.
std::vector<char> correct_rows(const ModelOutput& out, const std::vector<int64_t>& idx, const DeviceDataset& data) {
  const std::vector<double> logits = out.logits.to_double();
  const int64_t classes = out.logits.dim(1);
  std::vector<char> ok(idx.size());
  for (size_t r = 0; r < idx.size(); ++r) {
    const double* row = logits.data() + r * classes;
    ok[r] = std::max_element(row, row + classes) - row == data.labels[idx[r]];
  }
  return ok;
}

}  // namespace

std::vector<double> forgetting_scores(const SelectionContext& c) {
  const size_t n = static_cast<size_t>(c.train.size());
  std::vector<double> events(n, 0.0), presentations(n, 0.0);
  std::vector<char> last(n, 0), learned(n, 0);
  // One observation of samples idx: a forgetting event when correct last time and not now.
  auto observe = [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    const std::vector<char> ok = correct_rows(out, idx, c.train);
    for (size_t r = 0; r < idx.size(); ++r) {
      const int64_t i = idx[r];
      if (last[i] && !ok[r]) ++events[i];
      last[i] = ok[r];
      learned[i] |= ok[r];
      ++presentations[i];
    }
  };
  ScoringModel s = scoring_model(c, c.score_epochs, 0);
  Trainer t(*s.model, c.train, nullptr, s.config);
  if (c.protocol == Protocol::seed)
    t.on_epoch_end(
        [&](int64_t epoch) { t.for_each_batch(c.train, true, scoring_augment_seed(c.base.seed, epoch), observe); });
  else
    t.on_train_batch(observe);
  t.fit();
  if (c.protocol == Protocol::reference)
    for (size_t i = 0; i < n; ++i)
      if (!learned[i]) events[i] = presentations[i];
  return events;
}

Selection select_forgetting(const SelectionContext& c) {
  return keep_by_score(forgetting_scores(c), c.k, c.protocol == Protocol::reference);
}

}  // namespace sieve
