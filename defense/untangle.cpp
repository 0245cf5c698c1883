// untangle: sieve's own poisoned-sample detector. One method, fixed constants, nothing keyed to a
// dataset, model, trigger or setting.
//
// A backdoor leaves the target class as two populations: its clean samples and the poisons, which
// the poisoned model maps to a tight cluster of their own. untangle tests every class for such a
// second population, flags the classes where it stands out, and spends the budget there.
// 1. Whitening by the pooled within-class covariance (SCAn's global model, fit_pooled_whitening):
//    every direction of ordinary within-class variation gets unit variance.
// 2. Per class with at least kMinClass samples, in the whitened space:
//    a. the class's top kDims principal directions (directions of excess variance, where a
//       second population shows); the class is projected onto them (centred);
//    b. first splits: 2-means there (k-means++, best inertia of kRestarts seeded restarts), and
//       the best two-means cut along each of the kDims directions alone (a second population can
//       lie along one direction while the class also varies widely, unimodally, along others:
//       2-means, weighing every direction alike, then cuts across the wide ones);
//    c. EM for a two-component Gaussian mixture with full covariances (shrunk by kShrink towards
//       the isotropic covariance of the same trace, so that a small component stays well posed),
//       kEmIterations steps from each first split; the most likely mixture is kept. Which
//       component is the poison is decided by the class's over-population, not by size alone:
//       the clean part of a class should be as large as a typical class (m, the median size of
//       the other classes; s, 1.4826 times their MAD).
//       The larger component is the suspect one when taking it away leaves a class closer to m
//       than taking the smaller one away does, by more than max(3 s, kSizeMargin m) (poisons that
//       outnumber the clean samples of their class: CIFAR-100's 5%, 83% of the target class);
//       the smaller one when the opposite holds by as much (poisons a minority). Where neither
//       holds (components of about one size, as with 10% poisons drawn from all classes) and the
//       logits are given, the suspect is the component the model is more confident on (mean
//       logit margin): a trigger is the poisoned model's shortcut. Otherwise the smaller one;
//    d. two class statistics: the log-likelihood gain per sample of the mixture over one Gaussian
//       (same shrinkage), and the separation of the components along the line through their
//       means, D = |m1 - m0| sqrt(2 / (v0 + v1)) (Ashman's D; the split of one Gaussian gives
//       about 2, two clusters much more).
// 3. Evidence of class c: E_c = z(gain_c) + z(D_c) + max(0, z(n_c)), each a robust z-score
//    across the classes (median and 1.4826 MAD, the scale at least kScaleFloor of the median: a
//    handful of nearly equal statistics can have a tiny MAD by chance; 0 when the scale is 0).
//    The last term is the class's over-population: poisons relabelled to a target add to its
//    size, so a class larger than the others is evidence too (never a smaller one; none at all
//    when the sizes are equal).
//    A class is flagged when E_c > kFlag.
// 4. Scores. A flagged class: 1 + E_c + p_i, p_i the posterior of the suspect component, so
//    flagged classes outrank all others, the most evident first, and inside one the suspect
//    component goes first. Any other sample: its rank by whitened distance to its class mean
//    divided by its class size, in [0, 1): with no flagged class the budget is spread evenly over
//    the classes and takes each one's most atypical samples, which costs little accuracy on clean
//    data.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "defense/common.h"
#include "engine/linalg.h"

namespace sieve::defense_impl {

namespace {

constexpr int64_t kDims = 10, kRestarts = 4, kKMeansIterations = 100, kEmIterations = 30, kMinClass = 2 * kDims + 2;
constexpr double kShrink = 0.05, kFlag = 8.0;
// Sizes decide the suspect component only when the two choices leave classes differing by more
// than this fraction of a typical class (and 3 robust sigmas of the class sizes).
constexpr double kSizeMargin = 0.1;
// The robust z-scores of step 3 use a scale of at least this fraction of the median.
constexpr double kScaleFloor = 0.05;

// A Gaussian with shrunk covariance, fitted to the rows of x weighted by w; log-density per row.
struct Gaussian {
  std::vector<double> mean, chol;  // lower Cholesky factor of the covariance, k x k
  double log_det = 0;
  int64_t k = 0;

  static Gaussian fit(const HostMatrix& x, const std::vector<double>& w) {
    Gaussian g;
    const int64_t n = x.rows, k = x.cols;
    g.k = k;
    double total = 0;
    for (double v : w) total += v;
    total = std::max(total, 1e-12);
    g.mean.assign(static_cast<size_t>(k), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) g.mean[j] += w[i] * x.row(i)[j];
    for (double& m : g.mean) m /= total;
    std::vector<double> cov(static_cast<size_t>(k * k), 0.0), c(static_cast<size_t>(k));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) c[j] = x.row(i)[j] - g.mean[j];
      for (int64_t a = 0; a < k; ++a)
        for (int64_t b = 0; b <= a; ++b) cov[a * k + b] += w[i] * c[a] * c[b];
    }
    double trace = 0;
    for (int64_t a = 0; a < k; ++a) trace += cov[a * k + a] / total;
    const double floor = std::max(trace / double(k), 1e-12);
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b <= a; ++b)
        cov[a * k + b] = (1 - kShrink) * cov[a * k + b] / total + (a == b ? kShrink * floor : 0.0);
    // Cholesky of the (positive definite) shrunk covariance.
    g.chol.assign(static_cast<size_t>(k * k), 0.0);
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b <= a; ++b) {
        double s = cov[a * k + b];
        for (int64_t q = 0; q < b; ++q) s -= g.chol[a * k + q] * g.chol[b * k + q];
        if (a == b) {
          s = std::max(s, 1e-12 * floor);
          g.chol[a * k + a] = std::sqrt(s);
          g.log_det += 2 * std::log(g.chol[a * k + a]);
        } else {
          g.chol[a * k + b] = s / g.chol[b * k + b];
        }
      }
    return g;
  }

  double log_density(const double* x) const {
    std::vector<double> y(static_cast<size_t>(k));
    double q = 0;
    for (int64_t a = 0; a < k; ++a) {  // solve L y = x - mean
      double s = x[a] - mean[a];
      for (int64_t b = 0; b < a; ++b) s -= chol[a * k + b] * y[b];
      y[a] = s / chol[a * k + a];
      q += y[a] * y[a];
    }
    return -0.5 * (q + log_det + double(k) * std::log(2 * M_PI));
  }
};

double log_add(double a, double b) {
  const double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

struct ClassSplit {
  std::vector<double> posterior;  // of the suspect component, per sample of the class (the smaller one until oriented)
  double gain = 0, separation = 0;
  bool sized = false;  // the class's over-population decided which component is the suspect
};

// EM for the two-component mixture from a hard split (1 = the suspect component); returns the
// final responsibilities r1, the last E-step's component log-densities l0, l1 (with the weights),
// and the mixture's total log-likelihood.
struct EmFit {
  std::vector<double> r1, l0, l1;
  double log_likelihood = -INFINITY;
};
EmFit run_em(const HostMatrix& x, const std::vector<double>& start) {
  const int64_t n = x.rows;
  EmFit f{start, std::vector<double>(static_cast<size_t>(n)), std::vector<double>(static_cast<size_t>(n))};
  std::vector<double> r0(static_cast<size_t>(n));
  for (int64_t it = 0; it < kEmIterations; ++it) {
    for (int64_t i = 0; i < n; ++i) r0[i] = 1 - f.r1[i];
    const double w1 = std::clamp(std::accumulate(f.r1.begin(), f.r1.end(), 0.0) / double(n), 1e-4, 1 - 1e-4);
    const Gaussian g1 = Gaussian::fit(x, f.r1), g0 = Gaussian::fit(x, r0);
    f.log_likelihood = 0;
    for (int64_t i = 0; i < n; ++i) {
      f.l1[i] = g1.log_density(x.row(i)) + std::log(w1);
      f.l0[i] = g0.log_density(x.row(i)) + std::log(1 - w1);
      f.r1[i] = 1.0 / (1.0 + std::exp(std::clamp(f.l0[i] - f.l1[i], -50.0, 50.0)));
      f.log_likelihood += log_add(f.l0[i], f.l1[i]);
    }
  }
  return f;
}

// The best 1-D two-means split of v (the threshold minimising the within-group sum of squares):
// 1 above the threshold.
std::vector<double> split_along(const std::vector<double>& v) {
  const auto n = static_cast<int64_t>(v.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&v](int64_t a, int64_t b) { return v[a] < v[b]; });
  double total = 0, total_sq = 0;
  for (double x : v) total += x, total_sq += x * x;
  double left = 0, left_sq = 0, best = INFINITY;
  int64_t cut = 1;
  for (int64_t m = 1; m < n; ++m) {  // m samples below the threshold
    const double x = v[order[m - 1]];
    left += x, left_sq += x * x;
    const double right = total - left, right_sq = total_sq - left_sq;
    const double sse = (left_sq - left * left / double(m)) + (right_sq - right * right / double(n - m));
    if (sse < best) best = sse, cut = m;
  }
  std::vector<double> r(static_cast<size_t>(n), 0.0);
  for (int64_t m = cut; m < n; ++m) r[order[m]] = 1.0;
  return r;
}

// Steps 2b-2d on the projected class p (n, k), its columns the class's principal directions.
ClassSplit split_class(const Tensor& p, uint64_t seed) {
  KMeansResult best;
  for (int64_t r = 0; r < kRestarts; ++r) {
    KMeansResult km = kmeans(p, 2, kKMeansIterations, seed * kRestarts + static_cast<uint64_t>(r));
    if (r == 0 || km.inertia < best.inertia) best = std::move(km);
  }
  const HostMatrix x = to_host(p);
  const int64_t n = x.rows;
  // EM from several starts, the most likely fit kept: the 2-means split, and the best split along
  // each principal direction (a second population can lie along one direction that 2-means, which
  // weighs every direction alike, cuts across).
  std::vector<std::vector<double>> starts(1, std::vector<double>(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i) starts[0][i] = best.assignment[i] == 1 ? 1.0 : 0.0;
  for (int64_t j = 0; j < x.cols; ++j) {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = x.row(i)[j];
    starts.push_back(split_along(v));
  }
  EmFit fit;
  for (const std::vector<double>& start : starts) {
    EmFit f = run_em(x, start);
    if (f.log_likelihood > fit.log_likelihood) fit = std::move(f);
  }
  std::vector<double>& r1 = fit.r1;
  const std::vector<double>&l0 = fit.l0, &l1 = fit.l1;
  std::vector<double> r0(static_cast<size_t>(n));
  ClassSplit s;
  if (2 * std::accumulate(r1.begin(), r1.end(), 0.0) > double(n))  // the suspect component grew past half
    for (int64_t i = 0; i < n; ++i) r1[i] = 1 - r1[i];
  for (int64_t i = 0; i < n; ++i) r0[i] = 1 - r1[i];
  // Gain: mean log-likelihood of the mixture (of the last E-step) over one Gaussian.
  const Gaussian one = Gaussian::fit(x, std::vector<double>(static_cast<size_t>(n), 1.0));
  for (int64_t i = 0; i < n; ++i) s.gain += log_add(l0[i], l1[i]) - one.log_density(x.row(i));
  s.gain /= double(n);
  // Separation along the line through the component means.
  const Gaussian m1 = Gaussian::fit(x, r1), m0 = Gaussian::fit(x, r0);
  std::vector<double> dir(static_cast<size_t>(x.cols));
  for (int64_t j = 0; j < x.cols; ++j) dir[j] = m1.mean[j] - m0.mean[j];
  double sw[2] = {0, 0}, sm[2] = {0, 0}, sq[2] = {0, 0};
  for (int64_t i = 0; i < n; ++i) {
    double t = 0;
    for (int64_t j = 0; j < x.cols; ++j) t += x.row(i)[j] * dir[j];
    const double w[2] = {r0[i], r1[i]};
    for (int g = 0; g < 2; ++g) sw[g] += w[g], sm[g] += w[g] * t, sq[g] += w[g] * t * t;
  }
  double mean[2], var[2];
  for (int g = 0; g < 2; ++g) {
    const double tw = std::max(sw[g], 1e-12);
    mean[g] = sm[g] / tw;
    var[g] = std::max(sq[g] / tw - mean[g] * mean[g], 0.0);
  }
  s.separation = var[0] + var[1] > 0 ? std::abs(mean[1] - mean[0]) * std::sqrt(2.0 / (var[0] + var[1])) : 0.0;
  s.posterior = std::move(r1);
  return s;
}

class Untangle final : public Defense {
 public:
  std::string name() const override { return "untangle"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    classes_ = indices_by_class(labels, num_classes);
    n_ = features.dim(0), dim_ = features.dim(1);
    const Whitening w = fit_pooled_whitening(name(), features, classes_);
    const auto c_count = classes_.size();
    splits_.assign(c_count, ClassSplit{});
    distances_.assign(c_count, {});
    std::vector<double> gain(c_count, NAN), separation(c_count, NAN);
    for (size_t c = 0; c < c_count; ++c) {
      const auto nc = static_cast<int64_t>(classes_[c].size());
      if (nc == 0) continue;
      const Tensor z = project(gather_rows(features, classes_[c]), w.mean, w.basis);
      // Whitened distance to the class mean: the fallback ranking of unflagged classes.
      const HostMatrix zh = to_host(z);
      const std::vector<double> mu = column_mean(z).to_double();
      distances_[c].resize(static_cast<size_t>(nc));
      for (int64_t i = 0; i < nc; ++i) distances_[c][i] = squared_distance(zh.row(i), mu.data(), zh.cols);
      if (nc < kMinClass) continue;
      const Pca pca = fit_pca(z, std::min<int64_t>(kDims, z.dim(1)));
      splits_[c] = split_class(project(z, pca.mean, pca.components), static_cast<uint64_t>(c));
      gain[c] = splits_[c].gain, separation[c] = splits_[c].separation;
    }
    orient_by_population();
    std::vector<double> sizes(c_count, NAN);
    for (size_t c = 0; c < c_count; ++c)
      if (!std::isnan(gain[c])) sizes[c] = double(classes_[c].size());
    const std::vector<double> zg = robust_z(gain, kScaleFloor), zs = robust_z(separation, kScaleFloor),
                              zn = robust_z(sizes, kScaleFloor);
    evidence_.assign(c_count, NAN);
    for (size_t c = 0; c < c_count; ++c)
      if (!std::isnan(zg[c])) evidence_[c] = zg[c] + zs[c] + std::max(0.0, zn[c]);
  }

  std::vector<double> score(const Tensor& features, const Tensor& logits) override {
    check_score(name(), !evidence_.empty(), features, n_, dim_);
    const bool with_logits = logits.defined();
    if (with_logits) check_logits(name(), logits, n_, static_cast<int64_t>(classes_.size()));
    const HostMatrix lh = with_logits ? to_host(logits) : HostMatrix{};
    std::vector<double> scores(static_cast<size_t>(n_), 0.0);
    for (size_t c = 0; c < classes_.size(); ++c) {
      const std::vector<int64_t>& idx = classes_[c];
      const auto nc = static_cast<int64_t>(idx.size());
      if (flagged(c)) {
        const std::vector<double> p =
            with_logits && !splits_[c].sized ? oriented_by_confidence(c, lh) : splits_[c].posterior;
        for (int64_t i = 0; i < nc; ++i) scores[idx[i]] = 1.0 + evidence_[c] + p[i];
        continue;
      }
      std::vector<int64_t> order(static_cast<size_t>(nc));
      std::iota(order.begin(), order.end(), int64_t{0});
      const std::vector<double>& d = distances_[c];
      std::stable_sort(order.begin(), order.end(), [&d](int64_t a, int64_t b) { return d[a] < d[b]; });
      for (int64_t r = 0; r < nc; ++r) scores[idx[order[r]]] = double(r) / double(nc);
    }
    return scores;
  }

  // The class evidence E_c (NaN for a class too small to test) and whether it is flagged.
  const std::vector<double>& evidence() const { return evidence_; }
  bool flagged(size_t c) const { return !std::isnan(evidence_[c]) && evidence_[c] > kFlag; }

 private:
  // Step 2c's choice: the larger component is the suspect one when the class without it is
  // clearly closer to a typical class size than the class without the smaller one.
  void orient_by_population() {
    for (size_t c = 0; c < classes_.size(); ++c) {
      std::vector<double>& p = splits_[c].posterior;
      if (p.empty()) continue;
      std::vector<double> others;
      for (size_t o = 0; o < classes_.size(); ++o)
        if (o != c && !classes_[o].empty()) others.push_back(double(classes_[o].size()));
      if (others.empty()) continue;
      const double m = median(others), s = 1.4826 * median_absolute_deviation(others);
      const double small = std::accumulate(p.begin(), p.end(), 0.0), large = double(p.size()) - small;
      const double keep_large = std::abs(large - m), keep_small = std::abs(small - m);  // clean part left
      const double clear = std::max(3 * s, kSizeMargin * m);
      splits_[c].sized = std::abs(keep_large - keep_small) > clear;
      if (keep_large - keep_small > clear)
        for (double& v : p) v = 1 - v;
    }
  }

  // Step 2c's second witness, where the sizes do not tell (the components about as large): the
  // poisoned model is far more confident on the poisons, whose trigger is its shortcut, than on
  // the clean samples of their class, so the suspect component is the one with the larger mean
  // logit margin (top logit minus the runner-up).
  std::vector<double> oriented_by_confidence(size_t c, const HostMatrix& logits) const {
    std::vector<double> p = splits_[c].posterior;
    const std::vector<int64_t>& idx = classes_[c];
    double sum[2] = {0, 0}, weight[2] = {0, 0};
    for (size_t i = 0; i < idx.size(); ++i) {
      const double* l = logits.row(idx[i]);
      double top = -INFINITY, second = -INFINITY;
      for (int64_t k = 0; k < logits.cols; ++k)
        if (l[k] > top) second = top, top = l[k];
        else if (l[k] > second) second = l[k];
      const double margin = top - second;
      sum[1] += p[i] * margin, weight[1] += p[i];
      sum[0] += (1 - p[i]) * margin, weight[0] += 1 - p[i];
    }
    if (weight[0] > 0 && weight[1] > 0 && sum[0] / weight[0] > sum[1] / weight[1])
      for (double& v : p) v = 1 - v;
    return p;
  }

  std::vector<std::vector<int64_t>> classes_;
  std::vector<ClassSplit> splits_;
  std::vector<std::vector<double>> distances_;
  std::vector<double> evidence_;
  int64_t n_ = 0, dim_ = 0;
};

}  // namespace

std::unique_ptr<Defense> make_untangle() { return std::make_unique<Untangle>(); }

}  // namespace sieve::defense_impl
