// Pieces the suspicion scorers share: input checks, per-class index lists, PCA on the features'
// device, small dense matrices on the host, robust statistics, and the factories of the
// registry (defense/registry.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "defense/defense.h"
#include "engine/tensor.h"

namespace sieve::defense_impl {

// fit() inputs: features (N, D) floating point with N, D >= 1, N labels in [0, num_classes),
// a poison fraction in [0, 1). Errors name the defense.
void check_fit(const std::string& name, const Tensor& features, const std::vector<int64_t>& labels,
               int64_t num_classes, double poison_fraction);
// score() scores the samples fit() saw: features (n, d) like the fitted ones.
void check_score(const std::string& name, bool fitted, const Tensor& features, int64_t n, int64_t d);
// score()'s logits must be (n, num_classes).
void check_logits(const std::string& name, const Tensor& logits, int64_t n, int64_t num_classes);

// Sample indices of each class, ascending.
std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels, int64_t num_classes);

// A small row-major matrix of doubles on the host.
struct HostMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double* row(int64_t i) { return v.data() + i * cols; }
  const double* row(int64_t i) const { return v.data() + i * cols; }
};
HostMatrix to_host(const Tensor& t);  // any 2-d tensor, any device
Tensor to_tensor(const HostMatrix& m, DType dtype = DType::f64, Device device = Device::cpu);

double squared_distance(const double* a, const double* b, int64_t n);

// Principal components of the rows of x (n, D), on x's device: mean (D,) and components (k, D),
// the unit eigenvectors of the covariance with the k largest eigenvalues, largest first;
// variances (k,) on the host are those eigenvalues.
struct Pca {
  Tensor mean, components;
  std::vector<double> variances;
};
Pca fit_pca(const Tensor& x, int64_t k);

// Whitening by the pooled within-class covariance S_e = sum_c n_c Cov_c / N (SCAn's global model):
// z = basis (x - mean), mean the global mean (D,), basis (r, D) = Lambda^{-1/2} V^T over the
// eigen-directions of S_e with eigenvalue above 1e-5 of the largest, so that Mahalanobis distances
// under S_e become Euclidean ones. On the features' device; fails, naming the defense, when S_e is 0.
struct Whitening {
  Tensor mean, basis;
};
Whitening fit_pooled_whitening(const std::string& name, const Tensor& features,
                               const std::vector<std::vector<int64_t>>& classes);

// Median (the mean of the middle two for an even count) and median absolute deviation.
double median(std::vector<double> v);
double median_absolute_deviation(const std::vector<double>& v);
// 1.4826 * MAD estimates the standard deviation of Gaussian data.
constexpr double kMadToSigma = 1.4826;
// Robust z-scores (v - median) / (1.4826 MAD) over the entries that are not NaN; NaN entries stay
// NaN, and every other one is 0 when the scale is 0. With min_relative_scale > 0 the scale is at
// least that fraction of |median|: among a handful of nearly equal values the MAD can be tiny by
// chance, and differences far below the values themselves would count as many sigmas.
std::vector<double> robust_z(const std::vector<double>& v, double min_relative_scale = 0.0);

std::unique_ptr<Defense> make_confidence_filter();
std::unique_ptr<Defense> make_spectral_signature();
std::unique_ptr<Defense> make_activation_clustering();
std::unique_ptr<Defense> make_fine_pruning();
std::unique_ptr<Defense> make_spectre();
std::unique_ptr<Defense> make_scan();
std::unique_ptr<Defense> make_untangle();

}  // namespace sieve::defense_impl
