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

ForgettingCounter::ForgettingCounter(const DeviceDataset& data)
    : events(static_cast<size_t>(data.size()), 0.0),
      presentations(events.size(), 0.0),
      learned(events.size(), 0),
      data_(data),
      last_(events.size(), 0) {}

void ForgettingCounter::observe(const std::vector<int64_t>& idx, const ModelOutput& out) {
  const std::vector<char> ok = correct_rows(out, idx, data_);
  for (size_t r = 0; r < idx.size(); ++r) {
    const int64_t i = idx[r];
    if (last_[i] && !ok[r]) ++events[i];
    last_[i] = ok[r];
    learned[i] |= ok[r];
    ++presentations[i];
  }
}

std::vector<double> forgetting_scores(const SelectionContext& c) {
  if (c.protocol == Protocol::seed) return seed_protocol_scores(c).forgetting;
  ForgettingCounter counter(c.train);
  ScoringModel s = scoring_model(c, c.score_epochs, 0);
  Trainer t(*s.model, c.train, nullptr, s.config);
  t.on_train_batch([&](const std::vector<int64_t>& idx, const ModelOutput& out) { counter.observe(idx, out); });
  t.fit();
  for (size_t i = 0; i < counter.events.size(); ++i)
    if (!counter.learned[i]) counter.events[i] = counter.presentations[i];
  return counter.events;
}

Selection select_forgetting(const SelectionContext& c) {
  return keep_by_score(forgetting_scores(c), c.k, c.protocol == Protocol::reference);
}

}  // namespace sieve
