// EL2N (Paul et al. 2021): the error L2 norm ||softmax(f(x)) - onehot(y)||_2 of a model early in
// training, in the study's variant (one model, mean over epochs, augmented inputs, keep the
// easiest) and the paper's (mean over initialisations, clean inputs, keep the hardest).
#include <cmath>

#include "selection/selection.h"

namespace sieve {

namespace {

// scores[i] += EL2N of each sample i of one batch of outputs.
void add_el2n(const DeviceDataset& data, const std::vector<int64_t>& idx, const ModelOutput& out,
              std::vector<double>& scores) {
  std::vector<int64_t> labels(idx.size());
  for (size_t r = 0; r < idx.size(); ++r) labels[r] = data.labels[idx[r]];
  const std::vector<double> g = logit_gradients(out.logits, labels);
  const int64_t classes = out.logits.dim(1);
  for (size_t r = 0; r < idx.size(); ++r) {
    double sq = 0;
    for (int64_t j = 0; j < classes; ++j) sq += g[r * classes + j] * g[r * classes + j];
    scores[idx[r]] += std::sqrt(sq);
  }
}

}  // namespace

SeedProtocolScores seed_protocol_scores(const SelectionContext& c) {
  SeedProtocolScores result;
  if (c.score_epochs >= 2) result.el2n.assign(static_cast<size_t>(c.train.size()), 0.0);
  ForgettingCounter counter(c.train);
  ScoringModel s = scoring_model(c, c.score_epochs, 0);
  Trainer t(*s.model, c.train, nullptr, s.config);
  t.on_epoch_end([&](int64_t epoch) {
    t.for_each_batch(c.train, true, scoring_augment_seed(c.base.seed, epoch),
                     [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
                       counter.observe(idx, out);
                       if (epoch > 0 && !result.el2n.empty()) add_el2n(c.train, idx, out, result.el2n);
                     });
  });
  t.fit();
  for (double& v : result.el2n) v /= static_cast<double>(c.score_epochs - 1);
  result.forgetting = std::move(counter.events);
  return result;
}

std::vector<double> el2n_scores(const SelectionContext& c) {
  if (c.protocol == Protocol::seed) {
    SIEVE_CHECK(c.score_epochs >= 2, "el2n: the seed protocol averages epochs 2..E, so it needs E >= 2, got ",
                c.score_epochs);
    return seed_protocol_scores(c).el2n;
  }
  SIEVE_CHECK(c.el2n_runs >= 1, "el2n: the reference protocol needs >= 1 run, got ", c.el2n_runs);
  std::vector<double> scores(static_cast<size_t>(c.train.size()), 0.0);
  for (int64_t run = 0; run < c.el2n_runs; ++run) {
    ScoringModel s = scoring_model(c, c.score_epochs, run);
    Trainer t(*s.model, c.train, nullptr, s.config);
    t.fit();
    t.for_each_batch(c.train, false, 0,
                     [&](const std::vector<int64_t>& idx, const ModelOutput& out) { add_el2n(c.train, idx, out, scores); });
  }
  for (double& v : scores) v /= static_cast<double>(c.el2n_runs);
  return scores;
}

Selection select_el2n(const SelectionContext& c) {
  return keep_by_score(el2n_scores(c), c.k, c.protocol == Protocol::reference);
}

}  // namespace sieve
