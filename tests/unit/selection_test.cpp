// Coreset selection: budgets, random, ranking; EL2N, forgetting and CRAIG against recomputations
// of their formulas from outputs recorded through the same trainer hooks (a tiny net, two or
// three synthetic classes, 2-3 epochs); facility location against naive loops, a hand-worked
// greedy order and brute-force optima.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/py_random.h"
#include "layers/layers.h"
#include "selection/facility_location.h"
#include "selection/selection.h"
#include "tests/common/check.h"

using namespace sieve;
using test::random_tensor;

namespace {

// conv 3x3 stride 4 -> BN + ReLU -> global average pool = 8 features -> linear: fast on a CPU.
class TinyNet : public Model {
 public:
  TinyNet(int64_t classes, uint64_t seed) {
    Generator gen(seed);
    conv_ = &register_module("conv", std::make_unique<Conv2d>(3, 8, 3, Conv2dParams{4, 1, 1}, false, gen));
    bn_ = &register_module("bn", std::make_unique<BatchNorm2d>(8, /*relu=*/true));
    pool_ = &register_module("pool", std::make_unique<GlobalAvgPool>());
    fc_ = &register_module("fc", std::make_unique<Linear>(8, classes, true, gen));
  }
  ModelOutput forward(const Tensor& x) override {
    Tensor f = pool_->forward(bn_->forward(conv_->forward(x)));
    return {f, fc_->forward(f)};
  }
  int64_t feature_dim() const override { return 8; }

 private:
  Conv2d* conv_;
  BatchNorm2d* bn_;
  GlobalAvgPool* pool_;
  Linear* fc_;
};

// 48 synthetic images of `classes` classes; with `relabel`, samples 5 and 17 carry label 2 of a
// third class the images never show (poisoned labels the model may never learn).
DeviceDataset tiny_data(int64_t classes, bool relabel = false) {
  DeviceDataset d = to_device(make_synthetic(48, classes, 3), Device::cpu);
  if (relabel) {
    d.num_classes = 3;
    d.labels[5] = d.labels[17] = 2;
  }
  return d;
}

SelectionContext tiny_context(const DeviceDataset& data, Protocol protocol) {
  TrainConfig base;
  base.batch_size = 16;
  base.lr = 0.05;
  base.seed = 11;
  base.progress = false;
  const int64_t classes = data.num_classes;
  SelectionContext c{[classes](uint64_t seed) { return std::make_unique<TinyNet>(classes, seed); }, data, base,
                     protocol, 20};
  c.score_epochs = 3;
  c.el2n_runs = 2;
  c.craig_epochs = 2;
  return c;
}

// Naive softmax of one row of logits.
std::vector<double> softmax_row(const std::vector<double>& logits, int64_t row, int64_t classes) {
  std::vector<double> p(static_cast<size_t>(classes));
  double sum = 0;
  for (int64_t j = 0; j < classes; ++j) sum += (p[j] = std::exp(logits[row * classes + j]));
  for (double& v : p) v /= sum;
  return p;
}

// Recorded through a batch hook: EL2N and correctness of each sample of the batch.
void record(const DeviceDataset& data, const std::vector<int64_t>& idx, const ModelOutput& out,
            std::vector<double>* el2n, std::vector<int>* correct) {
  const std::vector<double> logits = out.logits.to_double();
  const int64_t classes = out.logits.dim(1);
  for (size_t r = 0; r < idx.size(); ++r) {
    const std::vector<double> p = softmax_row(logits, static_cast<int64_t>(r), classes);
    const int64_t y = data.labels[idx[r]];
    double sq = 0;
    int64_t arg = 0;
    for (int64_t j = 0; j < classes; ++j) {
      sq += (p[j] - (j == y)) * (p[j] - (j == y));
      if (p[j] > p[arg]) arg = j;
    }
    if (el2n) (*el2n)[idx[r]] += std::sqrt(sq);
    if (correct) (*correct)[idx[r]] = arg == y;
  }
}

bool is_sorted_unique(const std::vector<int64_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), std::greater_equal<int64_t>()) == v.end();
}

// Objective of facility location on a similarity matrix (m, m) for a chosen set.
double objective(const std::vector<double>& sim, int64_t m, const std::vector<int64_t>& chosen) {
  double f = 0;
  for (int64_t i = 0; i < m; ++i) {
    double best = 0;
    for (int64_t j : chosen) best = std::max(best, sim[i * m + j]);
    f += best;
  }
  return f;
}

std::vector<double> naive_similarity(const std::vector<double>& x, int64_t m, int64_t d) {
  std::vector<double> dist(static_cast<size_t>(m * m));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) s += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
      dist[i * m + j] = std::sqrt(s);
    }
  const double top = *std::max_element(dist.begin(), dist.end());
  for (double& v : dist) v = top - v;
  return dist;
}

}  // namespace

TEST_CASE("selection: class budgets are floor(k * n_c / n)") {
  const std::vector<int64_t> labels{0, 0, 0, 1, 1, 2, 0, 1, 1, 1};  // n_c = 4, 5, 1
  CHECK(class_budgets(labels, 3, 5) == std::vector<int64_t>{2, 2, 0});
  CHECK(class_budgets(labels, 3, 7) == std::vector<int64_t>{2, 3, 0});  // 2.8, 3.5, 0.7: sums to 5 < 7
  CHECK(class_budgets(labels, 4, 10) == std::vector<int64_t>{4, 5, 1, 0});
  CHECK_THROWS_WITH_AS(class_budgets(labels, 2, 5), doctest::Contains("label 2 outside [0, 2)"), Error);
  CHECK_THROWS_WITH_AS(class_budgets(labels, 3, 11), doctest::Contains("k = 11 outside [0, 10]"), Error);
  CHECK(parse_protocol("reference") == Protocol::reference);
  CHECK_THROWS_WITH_AS(parse_protocol("paper"), doctest::Contains("--protocol: unknown protocol 'paper'"), Error);
}

TEST_CASE("selection: random is deterministic, sorted, without repeats and uniform, in both protocols") {
  for (const Protocol p : {Protocol::seed, Protocol::reference}) {
    const Selection a = select_random(100, 30, 5, p), b = select_random(100, 30, 5, p),
                    c = select_random(100, 30, 6, p);
    CHECK(a.indices == b.indices);
    CHECK(a.indices != c.indices);
    CHECK(a.indices.size() == 30);
    CHECK(a.weights.empty());
    CHECK(is_sorted_unique(a.indices));
    CHECK(a.indices.front() >= 0);
    CHECK(a.indices.back() < 100);
    CHECK(select_random(7, 7, 1, p).indices == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
    CHECK(select_random(7, 0, 1, p).indices.empty());
    std::vector<int> hits(10, 0);
    for (uint64_t seed = 0; seed < 400; ++seed)
      for (int64_t i : select_random(10, 3, seed, p).indices) ++hits[i];
    for (int h : hits) CHECK(std::abs(h - 120) < 40);  // 400 * 3 / 10 each, binomial sd ~9
    CHECK_THROWS_WITH_AS(select_random(5, 6, 1, p), doctest::Contains("select_random: k = 6 outside [0, 5]"), Error);
  }
  // seed: Python's random.sample(range(n), k) with the same seed (sorted); reference: another draw.
  std::vector<int64_t> python = PyRandom(5).sample(100, 30);
  std::sort(python.begin(), python.end());
  CHECK(select_random(100, 30, 5, Protocol::seed).indices == python);
  CHECK(select_random(100, 30, 5, Protocol::reference).indices != python);
}

TEST_CASE("selection: the seed protocol's Random keeps the poisons drawn with its seed, the reference's half") {
  // Study 1 at a tenth of its size: 100 poisons of 5,000 drawn as its code does, a half subset.
  int64_t seed_kept = 0, reference_kept = 0;
  for (uint64_t seed : {1608637542ull, 1273642419ull, 1935803228ull}) {
    const std::vector<int64_t> poisons = PyRandom(seed).sample(5000, 100);
    auto kept = [&](const Selection& s) {
      return std::count_if(poisons.begin(), poisons.end(),
                           [&](int64_t i) { return std::binary_search(s.indices.begin(), s.indices.end(), i); });
    };
    seed_kept += kept(select_random(5000, 2500, seed, Protocol::seed));
    reference_kept += kept(select_random(5000, 2500, seed, Protocol::reference));
  }
  CHECK(seed_kept >= 290);                                     // nearly all 300
  CHECK(reference_kept > 100);                                 // about half: 150, sd ~8.7
  CHECK(reference_kept < 200);
}

TEST_CASE("selection: keep_by_score keeps the lowest or highest, ties by the lower index") {
  const std::vector<double> s{1, 0, 1, 0, 1, 2};
  CHECK(keep_by_score(s, 2, false).indices == std::vector<int64_t>{1, 3});
  CHECK(keep_by_score(s, 3, false).indices == std::vector<int64_t>{0, 1, 3});
  CHECK(keep_by_score(s, 2, true).indices == std::vector<int64_t>{0, 5});
  CHECK(keep_by_score(s, 3, true).indices == std::vector<int64_t>{0, 2, 5});
  CHECK_THROWS_WITH_AS(keep_by_score({1.0, NAN}, 1, true), doctest::Contains("score 1 is NaN"), Error);
  // Where the cut fell: 2 zeros; keeping 3 lowest cuts inside the three 1s and keeps one of them.
  const Selection low3 = keep_by_score(s, 3, false);
  REQUIRE(low3.cut);
  CHECK(low3.cut->zero_scores == 2);
  CHECK(low3.cut->cut_score == 1);
  CHECK(low3.cut->tied_at_cut == 3);
  CHECK(low3.cut->tied_kept == 1);
  const Selection high2 = keep_by_score(s, 2, true);
  CHECK(high2.cut->cut_score == 1);
  CHECK(high2.cut->tied_kept == 1);
  CHECK(keep_by_score(s, 0, true).cut->tied_at_cut == 0);
}

TEST_CASE("selection: logit gradients are softmax minus one-hot") {
  const Tensor logits = random_tensor({4, 3}, 1, -3.0, 3.0);
  const std::vector<int64_t> labels{2, 0, 1, 2};
  const std::vector<double> g = logit_gradients(logits, labels), l = logits.to_double();
  std::vector<double> ref;
  for (int64_t i = 0; i < 4; ++i) {
    const std::vector<double> p = softmax_row(l, i, 3);
    for (int64_t j = 0; j < 3; ++j) ref.push_back(p[j] - (j == labels[i]));
  }
  test::expect_close(g, ref, {1e-12, 1e-10}, "logit gradients");
  CHECK_THROWS_WITH_AS(logit_gradients(logits, {0, 1, 3, 0}), doctest::Contains("label 3 of row 2 outside [0, 3)"),
                       Error);
}

TEST_CASE("selection: EL2N seed protocol = mean of epochs 2..E on augmented inputs, keep the lowest") {
  const DeviceDataset data = tiny_data(2);
  const SelectionContext c = tiny_context(data, Protocol::seed);
  std::vector<double> ref(48, 0.0);
  ScoringModel s = scoring_model(c, 3, 0);
  CHECK(s.config.t_max == 3);
  CHECK(s.config.schedule == "cosine");
  Trainer t(*s.model, data, nullptr, s.config);
  t.on_epoch_end([&](int64_t e) {
    if (e > 0)
      t.for_each_batch(data, true, scoring_augment_seed(c.base.seed, e), [&](const auto& idx, const ModelOutput& out) {
        record(data, idx, out, &ref, nullptr);
      });
  });
  t.fit();
  for (double& v : ref) v /= 2;
  const std::vector<double> scores = el2n_scores(c);
  test::expect_close(scores, ref, {1e-12, 1e-10}, "EL2N seed");
  const Selection sel = select_el2n(c);
  CHECK(sel.indices == keep_by_score(scores, 20, false).indices);
  CHECK(sel.weights.empty());
  SelectionContext one = c;
  one.score_epochs = 1;
  CHECK_THROWS_WITH_AS(el2n_scores(one), doctest::Contains("needs E >= 2"), Error);
}

TEST_CASE("selection: EL2N reference protocol = mean over initialisations on clean inputs, keep the highest") {
  const DeviceDataset data = tiny_data(2);
  SelectionContext c = tiny_context(data, Protocol::reference);
  c.score_epochs = 2;
  std::vector<std::vector<double>> runs(2, std::vector<double>(48, 0.0));
  for (int64_t r = 0; r < 2; ++r) {
    ScoringModel s = scoring_model(c, 2, r);
    CHECK(s.config.seed == c.base.seed + r);
    Trainer t(*s.model, data, nullptr, s.config);
    t.fit();
    std::vector<int64_t> all(48);
    std::iota(all.begin(), all.end(), int64_t{0});
    record(data, all, {Tensor(), t.extract(data).logits}, &runs[r], nullptr);
  }
  CHECK(runs[0] != runs[1]);
  std::vector<double> ref(48);
  for (size_t i = 0; i < 48; ++i) ref[i] = (runs[0][i] + runs[1][i]) / 2;
  const std::vector<double> scores = el2n_scores(c);
  test::expect_close(scores, ref, {1e-12, 1e-10}, "EL2N reference");
  CHECK(select_el2n(c).indices == keep_by_score(scores, 20, true).indices);
}

TEST_CASE("selection: forgetting seed protocol counts correct-to-incorrect between epochs, keep the lowest") {
  const DeviceDataset data = tiny_data(2);
  const SelectionContext c = tiny_context(data, Protocol::seed);
  std::vector<double> ref(48, 0.0);
  std::vector<int> prev(48, 0), now(48, 0);
  ScoringModel s = scoring_model(c, 3, 0);
  Trainer t(*s.model, data, nullptr, s.config);
  t.on_epoch_end([&](int64_t e) {
    t.for_each_batch(data, true, scoring_augment_seed(c.base.seed, e),
                     [&](const auto& idx, const ModelOutput& out) { record(data, idx, out, nullptr, &now); });
    for (size_t i = 0; i < 48; ++i) ref[i] += e > 0 && prev[i] && !now[i];
    prev = now;
  });
  t.fit();
  const std::vector<double> scores = forgetting_scores(c);
  CHECK(scores == ref);
  CHECK(std::accumulate(ref.begin(), ref.end(), 0.0) > 0);  // some events happen, so the count is exercised
  CHECK(select_forgetting(c).indices == keep_by_score(scores, 20, false).indices);
}

TEST_CASE("selection: forgetting reference protocol counts per presentation, never learned = presentations") {
  const DeviceDataset data = tiny_data(2, /*relabel=*/true);
  const SelectionContext c = tiny_context(data, Protocol::reference);
  std::vector<double> events(48, 0.0);
  std::vector<int> last(48, 0), now(48, 0), learned(48, 0);
  ScoringModel s = scoring_model(c, 3, 0);
  Trainer t(*s.model, data, nullptr, s.config);
  t.on_train_batch([&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    record(data, idx, out, nullptr, &now);
    for (int64_t i : idx) {
      events[i] += last[i] && !now[i];
      last[i] = now[i];
      learned[i] |= now[i];
    }
  });
  t.fit();
  for (size_t i = 0; i < 48; ++i)
    if (!learned[i]) events[i] = 3;  // presented once per epoch
  CHECK(!learned[5]);
  CHECK(!learned[17]);
  const std::vector<double> scores = forgetting_scores(c);
  CHECK(scores == events);
  const Selection sel = select_forgetting(c);
  CHECK(sel.indices == keep_by_score(scores, 20, true).indices);
  CHECK(std::binary_search(sel.indices.begin(), sel.indices.end(), 5));  // the hardest are kept
}

TEST_CASE("selection: CRAIG seed scores equal the explicit normalised outer products") {
  // Sample 3 has zero features, so its gradient is 0 and so are its normalised vector and score.
  // Sample 6's features are tiny: the study's g / (||g|| + 1e-8) keeps its vector far below unit
  // length, where g / ||g|| would make it as heavy as any other.
  const std::vector<double> f{1, 2, 0, -1, 0.5, 3, 0.2, -2, 1, 0, 0, 0, 2, 2, -1, -0.5, 1, 1, 3e-9, 0, 1e-9};
  const std::vector<int64_t> labels{0, 1, 0, 2, 1, 0, 2};
  const int64_t n = 7, d = 3, classes = 3;
  const Tensor features = Tensor::from_vector(f, {n, d});
  const Tensor logits = random_tensor({n, classes}, 4, -2.0, 2.0, DType::f64);
  const std::vector<double> r = logit_gradients(logits, labels);
  std::vector<std::vector<double>> ghat(n, std::vector<double>(classes * d));
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int64_t p = 0; p < classes; ++p)
      for (int64_t q = 0; q < d; ++q) norm += std::pow(ghat[i][p * d + q] = r[i * classes + p] * f[i * d + q], 2);
    for (double& v : ghat[i]) v /= std::sqrt(norm) + 1e-8;
  }
  std::vector<double> ref(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (labels[j] == labels[i])
        for (int64_t e = 0; e < classes * d; ++e) ref[i] += ghat[i][e] * ghat[j][e];
  test::expect_close(craig_seed_scores(features, logits, labels, classes), ref, {1e-12, 1e-10}, "CRAIG seed scores");
  CHECK(ref[3] == 0);
  double unit6 = 0;  // ||g_hat_6||^2 under the study's normalisation: well below 1
  for (double v : ghat[6]) unit6 += v * v;
  CHECK(unit6 < 0.2);
  CHECK_THROWS_WITH_AS(craig_seed_scores(features, logits, labels, 4), doctest::Contains("for 4 classes"), Error);
}

TEST_CASE("selection: CRAIG seed protocol keeps each class's top budget after a warm-up from lr 0") {
  const DeviceDataset data = tiny_data(2, /*relabel=*/true);
  const SelectionContext c = tiny_context(data, Protocol::seed);
  ScoringModel s = scoring_model(c, 2, 0);
  s.config.schedule = "warmup_cosine";
  s.config.warmup_epochs = 2;
  Trainer t(*s.model, data, nullptr, s.config);
  const std::vector<EpochStats> h = t.fit();
  CHECK(h[0].lr == 0.0);
  CHECK(h[1].lr == doctest::Approx(0.025));
  Tensor features = Tensor::empty({48, 8}), logits = Tensor::empty({48, 3});
  t.for_each_batch(data, true, scoring_augment_seed(c.base.seed, 2), [&](const auto& idx, const ModelOutput& out) {
    features.slice(idx.front() * 8, out.features.shape()).copy_(out.features);
    logits.slice(idx.front() * 3, out.logits.shape()).copy_(out.logits);
  });
  const std::vector<double> scores = craig_seed_scores(features, logits, data.labels, 3);
  const std::vector<int64_t> budgets = class_budgets(data.labels, 3, 20);  // 24, 22, 2 samples
  CHECK(budgets == std::vector<int64_t>{10, 9, 0});
  std::vector<int64_t> ref;
  for (int64_t cls = 0; cls < 3; ++cls) {
    std::vector<int64_t> members;
    for (int64_t i = 0; i < 48; ++i)
      if (data.labels[i] == cls) members.push_back(i);
    std::stable_sort(members.begin(), members.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    ref.insert(ref.end(), members.begin(), members.begin() + budgets[cls]);
  }
  std::sort(ref.begin(), ref.end());
  const Selection sel = select_craig(c);
  CHECK(sel.indices == ref);
  CHECK(sel.weights.empty());
}

TEST_CASE("selection: CRAIG reference protocol = per-class facility location, weights = cluster sizes") {
  const DeviceDataset data = tiny_data(3);
  SelectionContext c = tiny_context(data, Protocol::reference);
  c.craig_epochs = 1;
  c.k = 10;
  ScoringModel s = scoring_model(c, 1, 0);
  Trainer t(*s.model, data, nullptr, s.config);
  t.fit();
  const std::vector<double> g = logit_gradients(t.extract(data).logits, data.labels);
  std::map<int64_t, float> ref;  // index -> weight
  for (int64_t cls = 0; cls < 3; ++cls) {
    std::vector<int64_t> members;
    std::vector<float> points;
    for (int64_t i = 0; i < 48; ++i)
      if (data.labels[i] == cls) {
        members.push_back(i);
        for (int64_t j = 0; j < 3; ++j) points.push_back(static_cast<float>(g[i * 3 + j]));
      }
    std::vector<float> w;
    const int64_t m = static_cast<int64_t>(members.size());
    const std::vector<int64_t> chosen = facility_location_greedy(Tensor::from_vector(points, {m, 3}), 10 * m / 48, &w);
    for (size_t k = 0; k < chosen.size(); ++k) ref[members[chosen[k]]] = w[k];
  }
  const Selection sel = select_craig(c);
  REQUIRE(sel.indices.size() == 9);  // 16 per class: floor(10 * 16 / 48) = 3 each
  REQUIRE(sel.weights.size() == 9);
  CHECK(is_sorted_unique(sel.indices));
  double total = 0;
  for (size_t k = 0; k < sel.indices.size(); ++k) {
    CHECK(ref.count(sel.indices[k]) == 1);
    CHECK(sel.weights[k] == ref[sel.indices[k]]);
    total += sel.weights[k];
  }
  CHECK(total == 48);
}

TEST_CASE("facility location: similarity and gains match naive loops") {
  for (DType dt : {DType::f64, DType::f32}) {
    const Tensor x = random_tensor({9, 4}, 7, -1.0, 1.0, dt);
    const std::vector<double> ref = naive_similarity(x.to_double(), 9, 4);
    const Tensor sim = facility_location_similarity(x);
    CHECK(sim.dtype() == dt);
    const test::Tol tol = dt == DType::f64 ? test::Tol{1e-12, 1e-12} : test::kForward;
    test::expect_close(sim.to_double(), ref, tol, "similarity");
    const Tensor cov = random_tensor({9}, 8, 0.0, 2.0, dt);
    const std::vector<double> cv = cov.to_double();
    std::vector<double> gains(9, 0.0);
    for (int64_t j = 0; j < 9; ++j)
      for (int64_t i = 0; i < 9; ++i) gains[j] += std::max(0.0, ref[j * 9 + i] - cv[i]);
    test::expect_close(facility_location_gains(sim, cov).to_double(), gains, tol, "gains");
  }
  CHECK_THROWS_WITH_AS(facility_location_gains(Tensor::zeros({3, 3}), Tensor::zeros({4})),
                       doctest::Contains("must be (m, m)"), Error);
  CHECK_THROWS_WITH_AS(facility_location_similarity(Tensor::zeros({5})), doctest::Contains("points"), Error);
  Tensor bad = random_tensor({4, 2}, 9);
  bad.data<float>()[3] = NAN;
  CHECK_THROWS_WITH_AS(facility_location_similarity(bad), doctest::Contains("non-finite"), Error);
}

TEST_CASE("facility location: the greedy order of a hand-worked case, ties by the lower index") {
  // Points 0, 1, 2, 10, 11 on a line: sim = 11 - |a - b|. Row sums 31, 34, 35, 27, 24 -> 2;
  // then gains 2, 2, -, 16, 16 -> 3 (tie with 4); then 2, 2, -, -, 1 -> 0 (tie with 1); then 1, 4.
  const Tensor x = Tensor::from_vector(std::vector<double>{0, 1, 2, 10, 11}, {5, 1});
  for (Greedy mode : {Greedy::lazy, Greedy::plain}) {
    std::vector<float> w;
    CHECK(facility_location_greedy(x, 5, nullptr, mode) == std::vector<int64_t>{2, 3, 0, 1, 4});
    CHECK(facility_location_greedy(x, 2, &w, mode) == std::vector<int64_t>{2, 3});
    CHECK(w == std::vector<float>{3, 2});  // {0, 1, 2} nearest to 2; {10, 11} nearest to 10
  }
  CHECK(facility_location_greedy(x, 0).empty());
  CHECK_THROWS_WITH_AS(facility_location_greedy(x, 6), doctest::Contains("budget 6 outside [0, 5]"), Error);
}

TEST_CASE("facility location: greedy reaches (1 - 1/e) of the brute-force optimum, and the optimum for one") {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const int64_t m = 8;
    const Tensor x = random_tensor({m, 2}, 100 + seed, -1.0, 1.0, DType::f64);
    const std::vector<double> sim = naive_similarity(x.to_double(), m, 2);
    for (int64_t budget = 1; budget <= 4; ++budget) {
      double best = 0;
      for (int mask = 0; mask < (1 << m); ++mask) {
        if (__builtin_popcount(mask) != budget) continue;
        std::vector<int64_t> set;
        for (int64_t j = 0; j < m; ++j)
          if (mask >> j & 1) set.push_back(j);
        best = std::max(best, objective(sim, m, set));
      }
      const double greedy = objective(sim, m, facility_location_greedy(x, budget));
      CHECK(greedy >= (1 - std::exp(-1.0)) * best - 1e-12);
      CHECK(greedy <= best + 1e-12);
      if (budget == 1) CHECK(greedy == doctest::Approx(best).epsilon(1e-12));
    }
  }
}

TEST_CASE("facility location: lazy greedy equals plain greedy; weights are cluster sizes summing to m") {
  for (uint64_t seed = 0; seed < 3; ++seed) {
    const int64_t m = 60;
    const Tensor x = random_tensor({m, 5}, 200 + seed);
    const std::vector<double> sim = naive_similarity(x.to_double(), m, 5);
    std::vector<float> wl, wp;
    const std::vector<int64_t> lazy = facility_location_greedy(x, 20, &wl, Greedy::lazy);
    const std::vector<int64_t> plain = facility_location_greedy(x, 20, &wp, Greedy::plain);
    CHECK(lazy == plain);
    CHECK(wl == wp);
    std::vector<float> ref(20, 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      size_t arg = 0;
      for (size_t k = 1; k < lazy.size(); ++k)
        if (sim[i * m + lazy[k]] > sim[i * m + lazy[arg]]) arg = k;
      ++ref[arg];
    }
    CHECK(wl == ref);
    CHECK(std::accumulate(wl.begin(), wl.end(), 0.0f) == float(m));
    std::vector<int64_t> sorted = lazy;
    std::sort(sorted.begin(), sorted.end());
    CHECK(is_sorted_unique(sorted));
  }
}

TEST_CASE("selection: a context without a factory or with a bad subset size is rejected before training") {
  const DeviceDataset data = tiny_data(2);
  SelectionContext c = tiny_context(data, Protocol::seed);
  c.k = 0;
  CHECK_THROWS_WITH_AS(select_el2n(c), doctest::Contains("subset size 0 outside [1, 48]"), Error);
  c.k = 49;
  CHECK_THROWS_WITH_AS(select_craig(c), doctest::Contains("k = 49 outside [0, 48]"), Error);
  c.k = 10;
  c.make_model = nullptr;
  CHECK_THROWS_WITH_AS(select_forgetting(c), doctest::Contains("no model factory"), Error);
  c.protocol = Protocol::reference;
  c.el2n_runs = 0;
  CHECK_THROWS_WITH_AS(el2n_scores(c), doctest::Contains("needs >= 1 run"), Error);
}
