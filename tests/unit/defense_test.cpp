// Suspicion scorers on synthetic features whose poisons are known, the registry, and the
// budget, ranking and detection metrics every defense is judged by.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "defense/defense.h"
#include "engine/rng.h"
#include "tests/common/check.h"

using namespace sieve;

namespace {

constexpr int64_t kClasses = 5, kDims = 16, kSamples = 2000;
constexpr double kPoisonFraction = 0.05;

// Features of a poisoned training set: kClasses Gaussian classes (centres 5 apart along their
// own axis, per-dimension spreads in [0.7, 1.2]) and, when `poisoned`, 5% of the samples
// labelled 0 but drawn around class 0's centre shifted `shift` units along a fixed oblique
// direction (the feature-space footprint of a trigger). The clean samples are spread evenly over
// the classes (380 each, so poisons are a fifth of class 0) unless `small_target`, where class 0
// keeps 200 and poisons are a third of it, as in the benchmark's target class. Samples are
// shuffled so no class is a row range.
struct Synthetic {
  Tensor features;  // (N, kDims) f32
  std::vector<int64_t> labels;
  std::vector<uint8_t> is_poison;
};

Synthetic make_synthetic(bool poisoned, uint64_t seed, double shift_length = 8.0, bool small_target = false,
                         double fraction = kPoisonFraction) {
  Generator gen(seed);
  std::vector<double> spread(kDims), shift(kDims);
  for (double& v : spread) v = 0.7 + 0.5 * gen.uniform();
  for (int64_t j = 0; j < kDims; ++j) shift[j] = 1.0 + double(j % 3);
  const double norm = std::sqrt(std::inner_product(shift.begin(), shift.end(), shift.begin(), 0.0));
  for (double& v : shift) v *= shift_length / norm;
  const int64_t poisons = poisoned ? static_cast<int64_t>(fraction * kSamples) : 0;
  std::vector<double> x;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < kSamples; ++i) {
    const bool poison = i < poisons;
    const int64_t clean = i - poisons;
    int64_t label = poison ? 0 : clean % kClasses;
    if (small_target && !poison && label == 0 && clean / kClasses < 180) label = 1 + (clean / kClasses) % (kClasses - 1);
    for (int64_t j = 0; j < kDims; ++j)
      x.push_back((j == label ? 5.0 : 0.0) + (poison ? shift[j] : 0.0) + spread[j] * gen.normal());
    labels.push_back(label);
  }
  // Fisher-Yates with the same generator: the order is part of the data set.
  std::vector<int64_t> perm(kSamples);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = kSamples - 1; i > 0; --i) std::swap(perm[i], perm[gen.below(static_cast<uint64_t>(i + 1))]);
  Synthetic out;
  std::vector<double> shuffled(x.size());
  for (int64_t i = 0; i < kSamples; ++i) {
    std::copy_n(x.begin() + perm[i] * kDims, kDims, shuffled.begin() + i * kDims);
    out.labels.push_back(labels[perm[i]]);
    out.is_poison.push_back(perm[i] < poisons);
  }
  out.features = Tensor::from_vector(shuffled, {kSamples, kDims}).to(DType::f32);
  return out;
}

// Logits (N, kClasses) of a model that fits the given labels, poisons with far higher margins.
Tensor confident_logits(const Synthetic& s) {
  Generator gen(99);
  std::vector<double> l;
  for (int64_t i = 0; i < kSamples; ++i)
    for (int64_t c = 0; c < kClasses; ++c)
      l.push_back(0.3 * gen.normal() + (c == s.labels[i] ? (s.is_poison[i] ? 6.0 : 2.0) : 0.0));
  return Tensor::from_vector(l, {kSamples, kClasses}).to(DType::f32);
}

doctest::Contains contains(const std::string& text) { return doctest::Contains(text.c_str()); }

std::vector<double> fit_and_score(const std::string& name, const Synthetic& s, const Tensor& logits) {
  auto d = make_defense(name);
  d->fit(s.features, s.labels, kClasses, kPoisonFraction);
  return d->score(s.features, logits);
}

}  // namespace


TEST_CASE("defenses: spectral_signature, activation_clustering, spectre and scan find a planted poison cluster") {
  // Poisons are a fifth of class 0, 8 units from its centre. spectral_signature and
  // activation_clustering compare raw distances across classes, so the tails of the poison
  // cluster mix with the tails of clean classes (spreads up to 1.2): recall >= 0.9 (0.97 and 0.95
  // here). spectre and scan whiten per class (spectre) or by the within-class covariance (scan)
  // first, which leaves the poisons alone at the top: recall 1.
  const Synthetic s = make_synthetic(true, 1);
  const int64_t budget = removal_budget(1.0, kPoisonFraction, kSamples);
  REQUIRE(budget == 100);
  for (const auto& expected : std::vector<std::pair<std::string, double>>{
           {"spectral_signature", 0.9}, {"activation_clustering", 0.9}, {"spectre", 1.0}, {"scan", 1.0}}) {
    const std::string& name = expected.first;  // a plain name: doctest's macros capture it in lambdas
    const double min_recall = expected.second;
    const DetectionMetrics m = detection_metrics(fit_and_score(name, s, Tensor()), s.is_poison, budget);
    CHECK_MESSAGE(m.recall >= min_recall, name << ": recall " << m.recall);
    CHECK_MESSAGE(m.auroc >= 0.99, name << ": AUROC " << m.auroc);
  }
}

TEST_CASE("defenses: spectre and scan when poisons are a third of their class") {
  // The benchmark's target class: 200 clean samples and 100 poisons, 4.5 units apart. Outliers
  // this many hardly inflate the variance against the MAD: spectre's filter catches them by the
  // second mode along the top axis (recall 0.93; 0.07 without that test, when the filter stops
  // at once and the whitened covariance is the identity). scan's two-subgroup split separates
  // them outright (0.97): the clusters overlap slightly at this distance, hence the thresholds.
  const Synthetic s = make_synthetic(true, 2, 4.5, true);
  for (const auto& expected : std::vector<std::pair<std::string, double>>{{"spectre", 0.9}, {"scan", 0.95}}) {
    const std::string& name = expected.first;
    const double min_recall = expected.second;
    const DetectionMetrics m = detection_metrics(fit_and_score(name, s, Tensor()), s.is_poison, 100);
    CHECK_MESSAGE(m.recall >= min_recall, name << ": recall " << m.recall);
  }
}

// Per class: how many of the `budget` most suspicious samples it loses.
std::vector<int64_t> removed_per_class(const std::vector<double>& scores, const std::vector<int64_t>& labels,
                                       int64_t budget) {
  std::vector<int64_t> count(kClasses, 0);
  for (int64_t i : top_suspicious(scores, budget)) ++count[labels[i]];
  return count;
}

TEST_CASE("defenses: untangle recovers planted poison clusters, flagging the target class only") {
  // Flagged classes score above 1, every other sample in [0, 1).
  auto flagged_classes = [](const std::vector<double>& scores, const std::vector<int64_t>& labels) {
    std::set<int64_t> f;
    for (int64_t i = 0; i < kSamples; ++i)
      if (scores[i] >= 1.0) f.insert(labels[i]);
    return f;
  };
  SUBCASE("a fifth of class 0, 8 units away") {
    const Synthetic s = make_synthetic(true, 1);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    CHECK(flagged_classes(scores, s.labels) == std::set<int64_t>{0});
    const DetectionMetrics m = detection_metrics(scores, s.is_poison, 100);
    CHECK(m.recall == 1.0);
    CHECK(m.auroc == 1.0);
  }
  SUBCASE("a third of class 0, 4.5 units away (the clusters overlap a little)") {
    const Synthetic s = make_synthetic(true, 2, 4.5, true);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    CHECK(flagged_classes(scores, s.labels) == std::set<int64_t>{0});
    const DetectionMetrics m = detection_metrics(scores, s.is_poison, 100);
    CHECK_MESSAGE(m.recall >= 0.97, "recall " << m.recall);
  }
  SUBCASE("1% poisons (20 of 2000), 8 units away") {
    const Synthetic s = make_synthetic(true, 4, 8.0, false, 0.01);
    REQUIRE(std::count(s.is_poison.begin(), s.is_poison.end(), 1) == 20);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    CHECK(flagged_classes(scores, s.labels) == std::set<int64_t>{0});
    CHECK(detection_metrics(scores, s.is_poison, 20).recall == 1.0);
  }
  SUBCASE("10% poisons, 6 units away; a budget 1.5 times larger takes the rest from the target class") {
    const Synthetic s = make_synthetic(true, 5, 6.0, false, 0.10);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    CHECK(flagged_classes(scores, s.labels) == std::set<int64_t>{0});
    CHECK(detection_metrics(scores, s.is_poison, 200).recall >= 0.99);
    CHECK(removed_per_class(scores, s.labels, 300)[0] == 300);
  }
}

TEST_CASE("defenses: untangle when the poisons outnumber the clean samples of their class") {
  // The over-population decides which component is the poison: class 0 holds its clean samples
  // plus the poisons, every other class only clean ones.
  SUBCASE("5 poisons to 1 clean sample (83%, as CIFAR-100's target class at 5%), 8 units away") {
    const Synthetic s = make_synthetic(true, 8, 8.0, false, 0.5);  // class 0: 200 clean + 1000 poisons
    REQUIRE(std::count(s.is_poison.begin(), s.is_poison.end(), 1) == 1000);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    const DetectionMetrics m = detection_metrics(scores, s.is_poison, 1000);
    CHECK_MESSAGE(m.recall >= 0.99, "recall " << m.recall);
    CHECK(removed_per_class(scores, s.labels, 1000)[0] == 1000);
  }
  SUBCASE("a little more poisons than clean samples (10% from all classes), 6 units away") {
    const Synthetic s = make_synthetic(true, 9, 6.0, false, 0.25);  // class 0: 300 clean + 500 poisons
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    const DetectionMetrics m = detection_metrics(scores, s.is_poison, 500);
    CHECK_MESSAGE(m.recall >= 0.97, "recall " << m.recall);
  }
}

TEST_CASE("defenses: untangle when poisons and clean samples of their class are as many: the model's confidence decides") {
  // Class 0: 333 clean samples and 334 poisons, the other classes 333 each: the sizes cannot tell
  // the components apart. The logits can: the poisoned model is sure of its poisons (margin 6
  // against 2). Without them untangle falls back on the smaller component, a coin toss here.
  const Synthetic s = make_synthetic(true, 11, 6.0, false, 0.167);
  REQUIRE(std::count(s.is_poison.begin(), s.is_poison.end(), 1) == 334);
  auto d = make_defense("untangle");
  d->fit(s.features, s.labels, kClasses, kPoisonFraction);
  const DetectionMetrics m = detection_metrics(d->score(s.features, confident_logits(s)), s.is_poison, 334);
  CHECK_MESSAGE(m.recall >= 0.97, "recall " << m.recall);
  CHECK_THROWS_AS(d->score(s.features, Tensor::zeros({3, kClasses})), Error);
}

TEST_CASE("defenses: untangle finds a second population along one direction where its class also varies widely in others") {
  // Class 0 varies widely (spread 4, against about 1) along six of its own directions, as a
  // class-specific feature does; its 100 poisons sit 6 units away along another. 2-means
  // over the class's principal directions cuts across the wide ones; the mixture fitted from the
  // split along the poisons' direction is the more likely one, and untangle keeps it.
  Generator gen(21);
  const int64_t per_class = 400, poisons = 100, n = kClasses * per_class + poisons;
  std::vector<double> x;
  std::vector<int64_t> labels;
  std::vector<uint8_t> is_poison;
  for (int64_t i = 0; i < n; ++i) {
    const bool poison = i >= kClasses * per_class;
    const int64_t label = poison ? 0 : i % kClasses;
    for (int64_t j = 0; j < kDims; ++j) {
      const bool wide = label == 0 && j >= 8 && j < 14;
      x.push_back((j == label ? 5.0 : 0.0) + (poison && j == 15 ? 6.0 : 0.0) + (wide ? 4.0 : 1.0) * gen.normal());
    }
    labels.push_back(label);
    is_poison.push_back(poison);
  }
  const Tensor features = Tensor::from_vector(x, {n, kDims}).to(DType::f32);
  auto d = make_defense("untangle");
  d->fit(features, labels, kClasses, double(poisons) / double(n));
  const std::vector<double> scores = d->score(features, Tensor());
  const DetectionMetrics m = detection_metrics(scores, is_poison, poisons);
  CHECK_MESSAGE(m.recall >= 0.95, "recall " << m.recall);
}

TEST_CASE("defenses: untangle on clean features flags no class and spreads the budget evenly") {
  for (uint64_t seed : {3, 6, 7}) {
    const Synthetic s = make_synthetic(false, seed);
    const std::vector<double> scores = fit_and_score("untangle", s, Tensor());
    CHECK(*std::max_element(scores.begin(), scores.end()) < 1.0);
    // 150 removals over 5 classes of 400: within-class ranks give each class 30 (+-1 for ties).
    const int64_t budget = removal_budget(1.5, kPoisonFraction, kSamples);
    const std::vector<int64_t> per_class = removed_per_class(scores, s.labels, budget);
    CHECK(std::accumulate(per_class.begin(), per_class.end(), int64_t{0}) == budget);
    for (int64_t c = 0; c < kClasses; ++c) CHECK_MESSAGE(std::abs(per_class[c] - 30) <= 1, "class " << c << ": " << per_class[c]);
  }
}

TEST_CASE("defenses: confidence_filter ranks over-confident poisons first within their class") {
  const Synthetic s = make_synthetic(true, 1);
  const std::vector<double> scores = fit_and_score("confidence_filter", s, confident_logits(s));
  // Within class 0 the poisons (margin 6 against 2) hold the 100 highest z-scores. Across
  // classes a z-score caps a fifth of a class at (1 - p) / sqrt(p (1 - p)) = 2 standard
  // deviations, within the range of clean tails, so the global check is on AUROC only.
  std::vector<double> class0;
  std::vector<uint8_t> poison0;
  for (int64_t i = 0; i < kSamples; ++i)
    if (s.labels[i] == 0) class0.push_back(scores[i]), poison0.push_back(s.is_poison[i]);
  CHECK(detection_metrics(class0, poison0, 100).recall == 1.0);
  CHECK(detection_metrics(scores, s.is_poison, 100).auroc >= 0.95);
  // Within every class the z-scores have mean 0 and variance 1.
  for (int64_t c = 0; c < kClasses; ++c) {
    double sum = 0, sq = 0, n = 0;
    for (int64_t i = 0; i < kSamples; ++i)
      if (s.labels[i] == c) sum += scores[i], sq += scores[i] * scores[i], ++n;
    CHECK(sum / n == doctest::Approx(0.0).epsilon(1e-9).scale(1));
    CHECK(sq / n == doctest::Approx(1.0).epsilon(1e-9));
  }
}

TEST_CASE("defenses: fine_pruning scores the activation mass on dormant neurons") {
  // Non-negative features (after a ReLU): 13 busy dimensions; the last 3 (= round(0.2 * 16))
  // stay near zero on clean samples and fire on the poisons only.
  Generator gen(5);
  std::vector<double> x;
  std::vector<uint8_t> is_poison;
  for (int64_t i = 0; i < kSamples; ++i) {
    const bool poison = i % 20 == 7;
    for (int64_t j = 0; j < kDims; ++j)
      x.push_back(j < 13 ? std::abs(2.0 + gen.normal()) : (poison ? 3.0 + gen.uniform() : 0.05 * gen.uniform()));
    is_poison.push_back(poison);
  }
  const Tensor features = Tensor::from_vector(x, {kSamples, kDims}).to(DType::f32);
  auto d = make_defense("fine_pruning");
  d->fit(features, std::vector<int64_t>(kSamples, 0), 1, kPoisonFraction);
  const std::vector<double> scores = d->score(features, Tensor());
  CHECK(detection_metrics(scores, is_poison, 100).recall == 1.0);
  // The score is the share of the dormant dimensions in the sample's total activation.
  const std::vector<double> xf = features.to_double();
  for (int64_t i : {0, 7}) {
    double dormant = 0, total = 0;
    for (int64_t j = 0; j < kDims; ++j) total += xf[i * kDims + j], dormant += j >= 13 ? xf[i * kDims + j] : 0.0;
    CHECK(scores[i] == doctest::Approx(dormant / total).epsilon(1e-12));
  }
}

TEST_CASE("defenses: on clean features every score is finite and the budget removes its count") {
  const Synthetic s = make_synthetic(false, 3);
  const Tensor logits = confident_logits(s);
  for (const std::string& name : defense_names()) {
    const std::vector<double> scores = fit_and_score(name, s, logits);
    REQUIRE(scores.size() == static_cast<size_t>(kSamples));
    CHECK_MESSAGE(std::all_of(scores.begin(), scores.end(), [](double v) { return std::isfinite(v); }), name);
    const int64_t budget = removal_budget(1.5, kPoisonFraction, kSamples);
    const std::vector<int64_t> removed = top_suspicious(scores, budget);
    CHECK(budget == 150);
    CHECK(std::set<int64_t>(removed.begin(), removed.end()).size() == 150);
    CHECK(fit_and_score(name, s, logits) == scores);  // deterministic
  }
}

TEST_CASE("defenses: registry and bad input") {
  const std::vector<std::string> names = defense_names();
  CHECK(names == std::vector<std::string>{"confidence_filter", "spectral_signature", "activation_clustering",
                                          "fine_pruning", "spectre", "scan", "untangle"});
  for (const std::string& n : names) CHECK(make_defense(n)->name() == n);
  CHECK_THROWS_WITH_AS(make_defense("strip"),
                       doctest::Contains("--defenses: unknown defense 'strip' (known: confidence_filter, "
                                         "spectral_signature, activation_clustering, fine_pruning, spectre, scan, untangle)"),
                       Error);

  const Tensor x = test::random_tensor({6, 3}, 1);
  const std::vector<int64_t> labels{0, 1, 0, 1, 0, 1};
  for (const std::string& n : names) {
    auto d = make_defense(n);
    CHECK_THROWS_WITH_AS(d->score(x, Tensor()), contains(n + ": score() before fit()"), Error);
    CHECK_THROWS_WITH_AS(d->fit(x, {0, 1, 2, 0, 1, 0}, 2, 0.1),
                         contains(n + ": label 2 of sample 2 is outside [0, 2)"), Error);
    CHECK_THROWS_WITH_AS(d->fit(x, {0, 1}, 2, 0.1), contains(n + ": 2 labels for features (6, 3)"), Error);
    CHECK_THROWS_WITH_AS(d->fit(x, labels, 2, 1.0), contains(n + ": poison fraction 1 is outside [0, 1)"),
                         Error);
    d->fit(x, labels, 2, 0.1);
    CHECK_THROWS_WITH_AS(d->score(test::random_tensor({5, 3}, 2), Tensor::zeros({5, 2})),
                         contains(n + ": features (5, 3) must be (6, 3), the samples given to fit()"), Error);
  }
  auto cf = make_defense("confidence_filter");
  cf->fit(x, labels, 2, 0.1);
  CHECK_THROWS_WITH_AS(cf->score(x, Tensor::zeros({6, 3})),
                       doctest::Contains("confidence_filter: logits (6, 3) must be (6, 2)"), Error);
}

TEST_CASE("removal_budget rounds and clamps") {
  CHECK(removal_budget(1.0, 0.05, 50000) == 2500);
  CHECK(removal_budget(1.5, 0.05, 50000) == 3750);
  CHECK(removal_budget(1.0, 0.05, 30) == 2);   // 1.5 rounds away from zero
  CHECK(removal_budget(1.0, 0.05, 10) == 1);   // 0.5 likewise
  CHECK(removal_budget(1.0, 0.05, 9) == 0);    // 0.45
  CHECK(removal_budget(1.5, 0.9, 10) == 10);   // 13.5 clamped to n
  CHECK(removal_budget(0.0, 0.05, 100) == 0);
  CHECK(removal_budget(1.0, 0.05, 0) == 0);
  CHECK_THROWS_WITH_AS(removal_budget(-1.0, 0.05, 10), doctest::Contains("removal budget: negative"), Error);
}

TEST_CASE("top_suspicious: highest first, ties to the lower index, NaN lowest") {
  const std::vector<double> scores{1.0, 3.0, 3.0, NAN, 2.0, -1e300};
  CHECK(top_suspicious(scores, 3) == std::vector<int64_t>{1, 2, 4});
  CHECK(top_suspicious(scores, 6) == std::vector<int64_t>{1, 2, 4, 0, 5, 3});
  CHECK(top_suspicious(scores, 0).empty());
  CHECK_THROWS_WITH_AS(top_suspicious(scores, 7), doctest::Contains("top_suspicious: 7 of 6 samples"), Error);
}

TEST_CASE("detection_metrics: recall, precision and AUROC on hand-worked cases") {
  // Poisons score 0.9 and 0.7 against clean 0.8, 0.6, 0.5: the budget of 2 takes 0.9 and 0.8;
  // AUROC = (3 + 2) / 6 pairs ranked right.
  DetectionMetrics m = detection_metrics({0.9, 0.8, 0.7, 0.6, 0.5}, {1, 0, 1, 0, 0}, 2);
  CHECK(m.budget == 2);
  CHECK(m.poisons == 2);
  CHECK(m.removed_poisons == 1);
  CHECK(m.recall == 0.5);
  CHECK(m.precision == 0.5);
  CHECK(m.auroc == doctest::Approx(5.0 / 6.0));
  // A tie between a poison and a clean sample counts half: (0.5 + 1) / 2.
  CHECK(detection_metrics({1.0, 1.0, 0.0}, {1, 0, 0}, 1).auroc == doctest::Approx(0.75));
  // NaN ranks lowest.
  CHECK(detection_metrics({NAN, -1e300}, {1, 0}, 1).auroc == 0.0);
  CHECK(detection_metrics({NAN, -1e300}, {1, 0}, 1).removed_poisons == 0);
  // No poisons: recall 1 by convention, AUROC undefined (0.5); all poisons: AUROC 0.5 likewise.
  m = detection_metrics({0.3, 0.2, 0.1}, {0, 0, 0}, 2);
  CHECK(m.recall == 1.0);
  CHECK(m.precision == 0.0);
  CHECK(m.auroc == 0.5);
  m = detection_metrics({0.3, 0.2, 0.1}, {1, 1, 1}, 2);
  CHECK(m.recall == doctest::Approx(2.0 / 3.0));
  CHECK(m.precision == 1.0);
  CHECK(m.auroc == 0.5);
  CHECK(detection_metrics({0.3}, {1}, 0).precision == 0.0);
  CHECK_THROWS_WITH_AS(detection_metrics({0.3, 0.2}, {1}, 1), doctest::Contains("detection metrics: 2 scores for 1"),
                       Error);
}
