// The benchmark's baseline scorers.
//
// confidence_filter: z-score, within each given class, of the model's softmax confidence in the
//   given label; poisons are fitted with unusually high confidence, so score = z (a class whose
//   confidences are all equal scores 0).
// spectral_signature (Tran, Li and Madry, NeurIPS 2018): per class, centre the features and take
//   the top right singular vector v of the centred class matrix (the top eigenvector of the
//   class covariance); score = ((x - mu_c) . v_c)^2. The paper removes 1.5 eps n_c per class;
//   here, as in the benchmark, raw scores are compared across classes.
// activation_clustering (Chen et al., 2018): per class, reduce to 10 dimensions and split into
//   two clusters by 2-means; the smaller cluster is the suspicious one. The paper reduces with
//   ICA; sieve uses PCA (top 10 components of the class covariance), which keeps the procedure
//   deterministic. 2-means: k-means++ and Lloyd, best inertia of 10 seeded restarts, up to 300
//   iterations each (scikit-learn's defaults of the time). Score, from the Euclidean distances
//   a_S, a_L of a sample to the centres of the smaller and the larger cluster in the reduced
//   space (a silhouette-style margin):
//     members of the smaller cluster (a_S <= a_L): score = 1 + (1 - a_S / a_L), in [1, 2],
//     the others:                                   score = a_L / a_S, in [0, 1),
//   so the smaller cluster ranks first, each group ordered by how clearly a sample sits on the
//   smaller cluster's side; the score is continuous across the boundary. Equal sizes make the
//   second cluster the "smaller" one; a sample on both centres scores 1; a class of one
//   sample scores 0.
// fine_pruning (after Liu, Dolan-Gavitt and Garg, RAID 2018, as a scoring heuristic): backdoor
//   behaviour lives in neurons that clean inputs leave dormant. The dormant neurons are the
//   max(1, round(0.2 D)) feature dimensions with the lowest mean activation over the whole
//   training set (ties to the lower dimension); score = sum over dormant d of |x_d| divided by
//   sum over all d of |x_d| (0 for an all-zero feature vector).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "defense/common.h"
#include "engine/linalg.h"

namespace sieve::defense_impl {

namespace {

// Rows per host copy when a scorer walks all N feature vectors.
constexpr int64_t kHostRowBlock = 4096;

class ConfidenceFilter final : public Defense {
 public:
  std::string name() const override { return "confidence_filter"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    labels_ = labels;
    num_classes_ = num_classes;
    dim_ = features.dim(1);
  }

  std::vector<double> score(const Tensor& features, const Tensor& logits) override {
    const int64_t n = static_cast<int64_t>(labels_.size());
    check_score(name(), num_classes_ > 0, features, n, dim_);
    check_logits(name(), logits, n, num_classes_);
    const HostMatrix l = to_host(logits);
    std::vector<double> confidence(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double* row = l.row(i);
      const double top = *std::max_element(row, row + num_classes_);
      double sum = 0.0;
      for (int64_t c = 0; c < num_classes_; ++c) sum += std::exp(row[c] - top);
      confidence[i] = std::exp(row[labels_[i]] - top) / sum;
    }
    std::vector<double> scores(static_cast<size_t>(n), 0.0);
    for (const std::vector<int64_t>& idx : indices_by_class(labels_, num_classes_)) {
      if (idx.empty()) continue;
      double mean = 0.0, var = 0.0;
      for (int64_t i : idx) mean += confidence[i] / double(idx.size());
      for (int64_t i : idx) var += (confidence[i] - mean) * (confidence[i] - mean) / double(idx.size());
      const double sd = std::sqrt(var);
      for (int64_t i : idx) scores[i] = sd > 0 ? (confidence[i] - mean) / sd : 0.0;
    }
    return scores;
  }

 private:
  std::vector<int64_t> labels_;
  int64_t num_classes_ = 0, dim_ = 0;
};

class SpectralSignature final : public Defense {
 public:
  std::string name() const override { return "spectral_signature"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    classes_ = indices_by_class(labels, num_classes);
    n_ = features.dim(0);
    dim_ = features.dim(1);
    direction_.assign(classes_.size(), Pca{});
    for (size_t c = 0; c < classes_.size(); ++c)
      if (!classes_[c].empty()) direction_[c] = fit_pca(gather_rows(features, classes_[c]), 1);
    fitted_ = true;
  }

  std::vector<double> score(const Tensor& features, const Tensor& /*logits*/) override {
    check_score(name(), fitted_, features, n_, dim_);
    std::vector<double> scores(static_cast<size_t>(n_), 0.0);
    for (size_t c = 0; c < classes_.size(); ++c) {
      if (classes_[c].empty()) continue;
      const Pca& p = direction_[c];
      const std::vector<double> t = project(gather_rows(features, classes_[c]), p.mean, p.components).to_double();
      for (size_t r = 0; r < t.size(); ++r) scores[classes_[c][r]] = t[r] * t[r];
    }
    return scores;
  }

 private:
  std::vector<std::vector<int64_t>> classes_;
  std::vector<Pca> direction_;  // per class: its mean and top principal direction
  int64_t n_ = 0, dim_ = 0;
  bool fitted_ = false;
};

class ActivationClustering final : public Defense {
 public:
  static constexpr int64_t kDims = 10, kRestarts = 10, kIterations = 300;

  std::string name() const override { return "activation_clustering"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    classes_ = indices_by_class(labels, num_classes);
    n_ = features.dim(0);
    dim_ = features.dim(1);
    models_.assign(classes_.size(), ClassModel{});
    for (size_t c = 0; c < classes_.size(); ++c) {
      if (classes_[c].size() < 2) continue;
      ClassModel& m = models_[c];
      const Tensor rows = gather_rows(features, classes_[c]);
      m.pca = fit_pca(rows, std::min(kDims, dim_));
      const Tensor z = project(rows, m.pca.mean, m.pca.components);
      KMeansResult best;
      for (int64_t r = 0; r < kRestarts; ++r) {
        KMeansResult km = kmeans(z, 2, kIterations, static_cast<uint64_t>(c) * kRestarts + static_cast<uint64_t>(r));
        if (r == 0 || km.inertia < best.inertia) best = std::move(km);
      }
      const int64_t in_first = std::count(best.assignment.begin(), best.assignment.end(), 0);
      const int64_t in_second = static_cast<int64_t>(best.assignment.size()) - in_first;
      const HostMatrix centers = to_host(best.centers);
      const int64_t small = in_second <= in_first ? 1 : 0;
      m.small_center.assign(centers.row(small), centers.row(small) + centers.cols);
      m.large_center.assign(centers.row(1 - small), centers.row(1 - small) + centers.cols);
    }
    fitted_ = true;
  }

  std::vector<double> score(const Tensor& features, const Tensor& /*logits*/) override {
    check_score(name(), fitted_, features, n_, dim_);
    std::vector<double> scores(static_cast<size_t>(n_), 0.0);
    for (size_t c = 0; c < classes_.size(); ++c) {
      const ClassModel& m = models_[c];
      if (m.small_center.empty()) continue;
      const HostMatrix z = to_host(project(gather_rows(features, classes_[c]), m.pca.mean, m.pca.components));
      for (int64_t r = 0; r < z.rows; ++r) {
        const double as = std::sqrt(squared_distance(z.row(r), m.small_center.data(), z.cols));
        const double al = std::sqrt(squared_distance(z.row(r), m.large_center.data(), z.cols));
        scores[classes_[c][r]] = as <= al ? (al > 0 ? 2.0 - as / al : 1.0) : al / as;
      }
    }
    return scores;
  }

 private:
  struct ClassModel {
    Pca pca;
    std::vector<double> small_center, large_center;  // in the reduced space
  };
  std::vector<std::vector<int64_t>> classes_;
  std::vector<ClassModel> models_;
  int64_t n_ = 0, dim_ = 0;
  bool fitted_ = false;
};

class FinePruning final : public Defense {
 public:
  static constexpr double kDormantShare = 0.2;

  std::string name() const override { return "fine_pruning"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    n_ = features.dim(0);
    const int64_t d = features.dim(1);
    const std::vector<double> mean = column_mean(features).to_double();
    std::vector<int64_t> order(static_cast<size_t>(d));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return mean[a] < mean[b]; });
    const int64_t count = std::max<int64_t>(1, std::llround(kDormantShare * static_cast<double>(d)));
    dormant_.assign(static_cast<size_t>(d), 0);
    for (int64_t j = 0; j < count; ++j) dormant_[order[j]] = 1;
  }

  std::vector<double> score(const Tensor& features, const Tensor& /*logits*/) override {
    const int64_t d = static_cast<int64_t>(dormant_.size());
    check_score(name(), d > 0, features, n_, d);
    std::vector<double> scores(static_cast<size_t>(n_), 0.0);
    for (int64_t r0 = 0; r0 < n_; r0 += kHostRowBlock) {
      const int64_t rows = std::min(kHostRowBlock, n_ - r0);
      const std::vector<double> x = features.slice(r0 * d, {rows, d}).to_double();
      for (int64_t i = 0; i < rows; ++i) {
        double dormant = 0.0, total = 0.0;
        for (int64_t j = 0; j < d; ++j) {
          const double a = std::abs(x[i * d + j]);
          total += a;
          if (dormant_[j]) dormant += a;
        }
        scores[r0 + i] = total > 0 ? dormant / total : 0.0;
      }
    }
    return scores;
  }

 private:
  std::vector<uint8_t> dormant_;  // (D,) 1 for a dormant dimension
  int64_t n_ = 0;
};

}  // namespace

std::unique_ptr<Defense> make_confidence_filter() { return std::make_unique<ConfidenceFilter>(); }
std::unique_ptr<Defense> make_spectral_signature() { return std::make_unique<SpectralSignature>(); }
std::unique_ptr<Defense> make_activation_clustering() { return std::make_unique<ActivationClustering>(); }
std::unique_ptr<Defense> make_fine_pruning() { return std::make_unique<FinePruning>(); }

}  // namespace sieve::defense_impl
