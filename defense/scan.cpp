// SCAn (Tang, Wang, Zhang and Fang, "Demon in the Variant", USENIX Security 2021): statistical
// contamination analysis by a two-component decomposition of each class.
//
// Model: a feature vector is x = mu_c + e, the identity mu_c of its class plus a variation
// e ~ N(0, S_e) shared by all classes.
// 1. Global model. S_e = the pooled within-class covariance sum_c n_c Cov_c / N, with the class
//    means as identities. (The paper refines S_e and the covariance of the identities by EM;
//    with hundreds of samples per class its identities are the class means and its S_e the
//    pooled covariance, to well within sampling noise.) Every feature vector is whitened by S_e:
//    z = Lambda^{-1/2} V^T (x - m), m the global mean, over the eigen-directions of S_e with
//    eigenvalue above 1e-5 of the largest (S_e's pseudo-inverse, as in the paper), so that
//    Mahalanobis distances under S_e become Euclidean ones.
// 2. Per class c with n_c >= 2: two subgroups with means u_1, u_2 sharing S_e, fitted by hard EM,
//    which in the whitened space is 2-means (k-means++ initialisation, the best inertia of 4
//    seeded restarts, up to 100 iterations; the paper alternates the same two steps from a random
//    split).
// 3. Untangling statistic J_c = (1/n_c) sum_i [ |z_i - mu_c|^2 - |z_i - u_g(i)|^2 ]: twice the
//    mean per-sample log-likelihood ratio of the two-subgroup model over the one-group model
//    (the paper's test statistic with the subgroup means as u's).
// 4. Anomaly index across the classes: J*_c = (J_c - median J) / (1.4826 MAD J), all 0 when the
//    MAD is 0. SCAn calls a class infected when J*_c > e^2.
// 5. Per-sample score = J*_c + p_i, where p_i in [0, 1] is the posterior probability of the
//    minority subgroup under the fitted mixture (weights n_g / n_c, unit covariance in the
//    whitened space):
//      p_i = 1 / (1 + exp(-(log(n_min / n_maj) - (|z_i - u_min|^2 - |z_i - u_maj|^2) / 2))).
//    Classes thus rank by J*_c, so a class whose statistic sits at or below the median
//    contributes low scores, and within a class the minority subgroup ranks first. A class of
//    one sample scores 0.
#include <algorithm>
#include <cmath>

#include "defense/common.h"
#include "engine/linalg.h"

namespace sieve::defense_impl {

namespace {

constexpr int64_t kRestarts = 4, kIterations = 100;

class Scan final : public Defense {
 public:
  std::string name() const override { return "scan"; }

  void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double poison_fraction) override {
    check_fit(name(), features, labels, num_classes, poison_fraction);
    classes_ = indices_by_class(labels, num_classes);
    const int64_t n = features.dim(0), d = features.dim(1);
    dim_ = d;
    fit_whitening(features);

    models_.assign(classes_.size(), ClassModel{});
    std::vector<double> statistics(classes_.size(), NAN);  // J_c of the fitted classes
    for (size_t c = 0; c < classes_.size(); ++c) {
      const int64_t nc = static_cast<int64_t>(classes_[c].size());
      if (nc < 2) continue;
      const Tensor z = project(gather_rows(features, classes_[c]), mean_, whitening_);
      KMeansResult best;
      for (int64_t r = 0; r < kRestarts; ++r) {
        KMeansResult km = kmeans(z, 2, kIterations, static_cast<uint64_t>(c) * kRestarts + static_cast<uint64_t>(r));
        if (r == 0 || km.inertia < best.inertia) best = std::move(km);
      }
      const HostMatrix zh = to_host(z);
      // Class mean and subgroup means, from the final split.
      std::vector<double> mu(static_cast<size_t>(zh.cols), 0.0);
      std::vector<std::vector<double>> u(2, mu);
      int64_t count[2] = {0, 0};
      for (int64_t i = 0; i < nc; ++i) {
        const int64_t g = best.assignment[i];
        ++count[g];
        for (int64_t j = 0; j < zh.cols; ++j) mu[j] += zh.row(i)[j], u[g][j] += zh.row(i)[j];
      }
      for (int64_t j = 0; j < zh.cols; ++j) {
        mu[j] /= double(nc);
        for (int g = 0; g < 2; ++g) u[g][j] = count[g] ? u[g][j] / double(count[g]) : mu[j];
      }
      double j_stat = 0.0;
      for (int64_t i = 0; i < nc; ++i)
        j_stat += squared_distance(zh.row(i), mu.data(), zh.cols) -
                  squared_distance(zh.row(i), u[best.assignment[i]].data(), zh.cols);
      ClassModel& m = models_[c];
      m.statistic = j_stat / double(nc);
      const int minority = count[1] <= count[0] ? 1 : 0;
      m.minority = u[minority];
      m.majority = u[1 - minority];
      // An empty minority (all points in one subgroup) has posterior 0 everywhere.
      m.log_prior_ratio = count[minority] ? std::log(double(count[minority]) / double(count[1 - minority]))
                                          : -INFINITY;
      m.fitted = true;
      statistics[c] = m.statistic;
    }
    const std::vector<double> anomaly = robust_z(statistics);
    for (size_t c = 0; c < classes_.size(); ++c)
      if (models_[c].fitted) models_[c].anomaly_index = anomaly[c];
    n_ = n;
  }

  std::vector<double> score(const Tensor& features, const Tensor& /*logits*/) override {
    check_score(name(), whitening_.defined(), features, n_, dim_);
    std::vector<double> scores(static_cast<size_t>(n_), 0.0);
    for (size_t c = 0; c < classes_.size(); ++c) {
      const ClassModel& m = models_[c];
      if (!m.fitted) continue;
      const HostMatrix z = to_host(project(gather_rows(features, classes_[c]), mean_, whitening_));
      for (int64_t r = 0; r < z.rows; ++r) {
        const double logit = m.log_prior_ratio - 0.5 * (squared_distance(z.row(r), m.minority.data(), z.cols) -
                                                         squared_distance(z.row(r), m.majority.data(), z.cols));
        scores[classes_[c][r]] = m.anomaly_index + 1.0 / (1.0 + std::exp(-logit));
      }
    }
    return scores;
  }

 private:
  void fit_whitening(const Tensor& features) {
    Whitening w = fit_pooled_whitening(name(), features, classes_);
    mean_ = std::move(w.mean), whitening_ = std::move(w.basis);
  }

  struct ClassModel {
    bool fitted = false;
    double statistic = 0, anomaly_index = 0, log_prior_ratio = 0;
    std::vector<double> minority, majority;  // subgroup means in the whitened space
  };
  std::vector<std::vector<int64_t>> classes_;
  std::vector<ClassModel> models_;
  Tensor mean_, whitening_;
  int64_t n_ = 0, dim_ = 0;
};

}  // namespace

std::unique_ptr<Defense> make_scan() { return std::make_unique<Scan>(); }

}  // namespace sieve::defense_impl
