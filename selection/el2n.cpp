// EL2N (Paul et al. 2021): the error L2 norm ||softmax(f(x)) - onehot(y)||_2 of a model early in
// training, in the study's variant (one model, mean over epochs, augmented inputs, keep the
// easiest) and the paper's (mean over initialisations, clean inputs, keep the hardest).
#include <cmath>

#include "selection/selection.h"

namespace sieve {

namespace {

// scores[i] += EL2N of sample i under the trainer's model in eval mode.
void add_el2n(Trainer& t, const DeviceDataset& data, bool augment, uint64_t aug_seed, std::vector<double>& scores) {
  t.for_each_batch(data, augment, aug_seed, [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    std::vector<int64_t> labels(idx.size());
    for (size_t r = 0; r < idx.size(); ++r) labels[r] = data.labels[idx[r]];
    const std::vector<double> g = logit_gradients(out.logits, labels);
    const int64_t classes = out.logits.dim(1);
    for (size_t r = 0; r < idx.size(); ++r) {
      double sq = 0;
      for (int64_t j = 0; j < classes; ++j) sq += g[r * classes + j] * g[r * classes + j];
      scores[idx[r]] += std::sqrt(sq);
    }
  });
}

}  // namespace

std::vector<double> el2n_scores(const SelectionContext& c) {
  std::vector<double> scores(static_cast<size_t>(c.train.size()), 0.0);
  double passes = 0;
  if (c.protocol == Protocol::seed) {
    SIEVE_CHECK(c.score_epochs >= 2, "el2n: the seed protocol averages epochs 2..E, so it needs E >= 2, got ",
                c.score_epochs);
    ScoringModel s = scoring_model(c, c.score_epochs, 0);
    Trainer t(*s.model, c.train, nullptr, s.config);
    t.on_epoch_end([&](int64_t epoch) {
      if (epoch == 0) return;
      add_el2n(t, c.train, true, scoring_augment_seed(c.base.seed, epoch), scores);
      ++passes;
    });
    t.fit();
  } else {
    SIEVE_CHECK(c.el2n_runs >= 1, "el2n: the reference protocol needs >= 1 run, got ", c.el2n_runs);
    for (int64_t run = 0; run < c.el2n_runs; ++run) {
      ScoringModel s = scoring_model(c, c.score_epochs, run);
      Trainer t(*s.model, c.train, nullptr, s.config);
      t.fit();
      add_el2n(t, c.train, false, 0, scores);
      ++passes;
    }
  }
  for (double& v : scores) v /= passes;
  return scores;
}

Selection select_el2n(const SelectionContext& c) {
  return keep_by_score(el2n_scores(c), c.k, c.protocol == Protocol::reference);
}

}  // namespace sieve
