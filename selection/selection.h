// Coreset selection (PROTOCOLS.md, study 1): Random, EL2N, Forgetting and CRAIG, each in two
// protocols: `seed` = as the study coded it, `reference` = as the method papers define it.
// Every selector is deterministic for a seed, and ranks ties by the lower index.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/model.h"
#include "training/trainer.h"

namespace sieve {

enum class Protocol { seed, reference };
Protocol parse_protocol(const std::string& name);  // "seed" | "reference"

// Where a ranking by score was cut: how many samples scored exactly 0 (forgetting: never
// forgotten, or never learned in the seed protocol), the score of the last sample kept, how
// many samples share that score and how many of them were kept (the lowest indices).
struct ScoreCut {
  int64_t zero_scores = 0;
  double cut_score = 0;
  int64_t tied_at_cut = 0, tied_kept = 0;
};

// Dataset indices in increasing order; weights (aligned with indices) are empty unless the
// method weights its samples (CRAIG reference: cluster sizes, meant as per-sample loss weights);
// cut is set by the selectors that rank one score over the whole set (EL2N, forgetting).
struct Selection {
  std::vector<int64_t> indices;
  std::vector<float> weights;
  std::optional<ScoreCut> cut;
};

// floor(k * n_c / n) per class c, n_c = number of labels equal to c (CRAIG's per-class budget;
// the budgets may sum to less than k).
std::vector<int64_t> class_budgets(const std::vector<int64_t>& labels, int64_t num_classes, int64_t k);

// k of n indices uniformly without replacement.
//   seed: as the study coded it, `random.seed(seed); random.sample(range(n), k)` (CPython,
//   engine/py_random.h). Its poisons were drawn the same way with the same seed, so both read
//   one Mersenne Twister stream and the subset's first picks are the poisons.
//   reference: a partial Fisher-Yates shuffle on Generator(seed), independent of the poisons.
Selection select_random(int64_t n, int64_t k, uint64_t seed, Protocol protocol);

// The k indices with the lowest (or highest) scores, stably: ties go to the lower index; the
// selection's cut says where the ranking was cut.
Selection keep_by_score(const std::vector<double>& scores, int64_t k, bool highest);

// A fresh model whose initialisation is drawn from init_seed.
using ModelFactory = std::function<std::unique_ptr<Model>(uint64_t init_seed)>;

// What the score-based selectors need to train their own models. `base` gives the optimiser
// (lr, momentum, weight decay), batch size, augmentation, eta_min, progress and the seed; the
// selectors set epochs and schedule themselves, and never checkpoint.
//   seed protocol: one model, init and shuffling from base.seed.
//   reference protocol: run r of el2n_runs uses seed base.seed + r for both; the schedule is
//   base's (schedule, t_max, eta_min: set t_max to the normal run's length), stopped after the
//   scoring epochs, as the papers score early in a normal training run.
struct SelectionContext {
  ModelFactory make_model;
  const DeviceDataset& train;  // the (poisoned) training set; its labels are the ones scored
  TrainConfig base;
  Protocol protocol = Protocol::seed;
  int64_t k = 0;              // subset size
  int64_t score_epochs = 20;  // EL2N and forgetting: epochs trained while scoring
  int64_t el2n_runs = 10;     // reference EL2N: initialisations averaged
  int64_t craig_epochs = 0;   // CRAIG pre-training; 0 = the protocol's: 10 (seed), 20 (reference)
};

// The model a selector trains for run `run` (0-based) and its configuration: `epochs` epochs,
// seed base.seed + run for initialisation and shuffling, no checkpoint; seed protocol: cosine
// with T_max = epochs. Checks the context (factory set, 1 <= k <= N).
struct ScoringModel {
  std::unique_ptr<Model> model;
  TrainConfig config;
};
ScoringModel scoring_model(const SelectionContext& c, int64_t epochs, int64_t run);

// The augmentation stream of the seed protocol's eval-mode scoring pass after epoch `epoch`
// (0-based): a fresh crop/flip draw per pass, disjoint from the training stream of `seed`.
uint64_t scoring_augment_seed(uint64_t seed, int64_t epoch);

// softmax(logits_i) - onehot(labels_i), the gradient of the cross-entropy with respect to the
// logits: logits (N, C) on any device -> N * C values on the host, row-major, in f64.
std::vector<double> logit_gradients(const Tensor& logits, const std::vector<int64_t>& labels);

// EL2N = ||softmax(f(x)) - onehot(y)||_2 per sample.
//   seed: one model trained score_epochs epochs (cosine, T_max = score_epochs); after each
//   epoch, in eval mode on the augmented training set; the score is the mean over epochs
//   2..score_epochs (the first epoch's pass is left out).
//   reference: mean over el2n_runs models, each scored once after score_epochs epochs, in eval
//   mode on the non-augmented training set.
std::vector<double> el2n_scores(const SelectionContext& c);

// The seed protocol's EL2N and forgetting scores from one training run. The study trains one
// model for each, but the two runs are the same run (seed base.seed, score_epochs epochs,
// cosine) observed on the same augmented eval-mode pass after each epoch, so one serves both:
// el2n as el2n_scores (empty when score_epochs < 2), forgetting as forgetting_scores.
struct SeedProtocolScores {
  std::vector<double> el2n, forgetting;
};
SeedProtocolScores seed_protocol_scores(const SelectionContext& c);

// Forgetting events over observations of a dataset: an event when a sample observed correct
// (argmax = label, the first maximum on ties) is observed incorrect at its next observation.
class ForgettingCounter {
 public:
  explicit ForgettingCounter(const DeviceDataset& data);
  void observe(const std::vector<int64_t>& indices, const ModelOutput& out);
  std::vector<double> events, presentations;
  std::vector<char> learned;  // classified correctly at least once

 private:
  const DeviceDataset& data_;
  std::vector<char> last_;
};
Selection select_el2n(const SelectionContext& c);  // seed: the k lowest; reference: the k highest

// Forgetting events: a sample is forgotten when it is classified correctly at one observation
// and incorrectly at the next.
//   seed: one model, score_epochs epochs, cosine T_max = score_epochs; observed once per epoch
//   in eval mode on the augmented training set; never-learned samples score 0.
//   reference (Toneva et al.): observed at every minibatch presentation (the training forward
//   pass, before the step); a sample never classified correctly scores its number of
//   presentations, more than any sample that was learned can reach.
std::vector<double> forgetting_scores(const SelectionContext& c);
Selection select_forgetting(const SelectionContext& c);  // seed: the k lowest; reference: the k highest

// CRAIG as the study coded it, from eval-mode outputs: g_i = (softmax(logits_i) - onehot(y_i))
// outer features_i (C x D, the last layer's weight gradient), g_hat_i = g_i / (||g_i|| + 1e-8),
// score_i = g_hat_i . sum_{j in class(i)} g_hat_j. features (N, D), logits (N, C) on
// any device; the classes are the labels.
std::vector<double> craig_seed_scores(const Tensor& features, const Tensor& logits,
                                      const std::vector<int64_t>& labels, int64_t num_classes);

// CRAIG, per class (by the training labels) with the budgets of class_budgets(k).
//   seed: pre-train craig_epochs epochs (lr warms up as base.lr * e / craig_epochs from e = 0,
//   so the first epoch trains at lr 0), then craig_seed_scores on the augmented training set in
//   eval mode (augmentation scoring_augment_seed(base.seed, craig_epochs)); each class keeps
//   its top budget. No weights.
//   reference (Mirzasoleiman et al.): pre-train craig_epochs epochs on base's schedule, then
//   per class the facility-location greedy (selection/facility_location.h) on the gradient
//   proxies softmax - onehot of the non-augmented training set, in eval mode; weights = cluster
//   sizes, so the weights of a class sum to its size. To train on them, give the trainer
//   weights[k] at dataset index indices[k] (Trainer::set_sample_weights).
Selection select_craig(const SelectionContext& c);

}  // namespace sieve
