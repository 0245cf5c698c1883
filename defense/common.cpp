#include "defense/common.h"

#include <algorithm>
#include <cmath>

#include "engine/linalg.h"

namespace sieve::defense_impl {

void check_fit(const std::string& name, const Tensor& features, const std::vector<int64_t>& labels,
               int64_t num_classes, double poison_fraction) {
  SIEVE_CHECK(features.defined() && features.ndim() == 2 && is_floating(features.dtype()), name,
              ": features must be a 2-d float tensor (N, D), got ",
              features.defined() ? shape_str(features.shape()) : "an undefined tensor");
  const int64_t n = features.dim(0);
  SIEVE_CHECK(n > 0 && features.dim(1) > 0, name, ": features ", shape_str(features.shape()), " are empty");
  SIEVE_CHECK(static_cast<int64_t>(labels.size()) == n, name, ": ", labels.size(), " labels for features ",
              shape_str(features.shape()));
  SIEVE_CHECK(num_classes >= 1, name, ": num_classes must be >= 1, got ", num_classes);
  for (size_t i = 0; i < labels.size(); ++i)
    SIEVE_CHECK(labels[i] >= 0 && labels[i] < num_classes, name, ": label ", labels[i], " of sample ", i,
                " is outside [0, ", num_classes, ")");
  SIEVE_CHECK(poison_fraction >= 0 && poison_fraction < 1, name, ": poison fraction ", poison_fraction,
              " is outside [0, 1)");
}

void check_score(const std::string& name, bool fitted, const Tensor& features, int64_t n, int64_t d) {
  SIEVE_CHECK(fitted, name, ": score() before fit()");
  SIEVE_CHECK(features.defined() && features.ndim() == 2 && features.dim(0) == n && features.dim(1) == d, name,
              ": features ", features.defined() ? shape_str(features.shape()) : "(undefined)",
              " must be ", shape_str({n, d}), ", the samples given to fit()");
}

void check_logits(const std::string& name, const Tensor& logits, int64_t n, int64_t num_classes) {
  SIEVE_CHECK(logits.defined() && logits.ndim() == 2 && logits.dim(0) == n && logits.dim(1) == num_classes, name,
              ": logits ", logits.defined() ? shape_str(logits.shape()) : "(undefined)", " must be ",
              shape_str({n, num_classes}));
}

std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels, int64_t num_classes) {
  std::vector<std::vector<int64_t>> idx(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < labels.size(); ++i) idx[labels[i]].push_back(static_cast<int64_t>(i));
  return idx;
}

HostMatrix to_host(const Tensor& t) {
  SIEVE_CHECK(t.ndim() == 2, "to_host: expected a matrix, got ", shape_str(t.shape()));
  return {t.dim(0), t.dim(1), t.to_double()};
}

Tensor to_tensor(const HostMatrix& m, DType dtype, Device device) {
  return Tensor::from_vector(m.v, {m.rows, m.cols}).to(dtype).to(device);
}

double squared_distance(const double* a, const double* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

Pca fit_pca(const Tensor& x, int64_t k) {
  const int64_t d = x.dim(1);
  SIEVE_CHECK(k >= 1 && k <= d, "pca: ", k, " components of ", d, "-dimensional data");
  Pca p;
  p.mean = column_mean(x);
  const SymmetricEigen e = symmetric_eigen(covariance(x, p.mean));
  const std::vector<double> values = e.values.to_double();
  std::vector<int64_t> top;
  for (int64_t j = 0; j < k; ++j) {
    top.push_back(d - 1 - j);  // eigenvalues ascend
    p.variances.push_back(values[d - 1 - j]);
  }
  p.components = gather_rows(e.vectors, top);
  return p;
}

Whitening fit_pooled_whitening(const std::string& name, const Tensor& features,
                               const std::vector<std::vector<int64_t>>& classes) {
  constexpr double kRelativeEigenFloor = 1e-5;
  const int64_t n = features.dim(0), d = features.dim(1);
  std::vector<double> pooled(static_cast<size_t>(d * d), 0.0);
  for (const std::vector<int64_t>& idx : classes) {
    if (idx.empty()) continue;
    const Tensor rows = gather_rows(features, idx);
    const std::vector<double> cov = covariance(rows, column_mean(rows)).to_double();
    const double w = double(idx.size()) / double(n);
    for (size_t i = 0; i < pooled.size(); ++i) pooled[i] += w * cov[i];
  }
  const SymmetricEigen e =
      symmetric_eigen(Tensor::from_vector(pooled, {d, d}).to(features.dtype()).to(features.device()));
  const std::vector<double> values = e.values.to_double();
  const HostMatrix vectors = to_host(e.vectors);
  HostMatrix basis{0, d, {}};
  for (int64_t j = d - 1; j >= 0; --j) {
    if (!(values[j] > kRelativeEigenFloor * values[d - 1])) break;  // eigenvalues ascend
    for (int64_t q = 0; q < d; ++q) basis.v.push_back(vectors.row(j)[q] / std::sqrt(values[j]));
    ++basis.rows;
  }
  SIEVE_CHECK(basis.rows > 0, name, ": the within-class covariance of the features is zero");
  return {column_mean(features), to_tensor(basis, features.dtype(), features.device())};
}

std::vector<double> robust_z(const std::vector<double>& v, double min_relative_scale) {
  std::vector<double> defined;
  for (double x : v)
    if (!std::isnan(x)) defined.push_back(x);
  std::vector<double> z(v.size(), NAN);
  if (defined.empty()) return z;
  const double med = median(defined);
  const double scale = std::max(kMadToSigma * median_absolute_deviation(defined), min_relative_scale * std::abs(med));
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isnan(v[i])) z[i] = scale > 0 ? (v[i] - med) / scale : 0.0;
  return z;
}

double median(std::vector<double> v) {
  SIEVE_CHECK(!v.empty(), "median of no values");
  const size_t h = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + h, v.end());
  const double upper = v[h];
  if (v.size() % 2) return upper;
  return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + h));
}

double median_absolute_deviation(const std::vector<double>& v) {
  const double m = median(v);
  std::vector<double> dev(v.size());
  for (size_t i = 0; i < v.size(); ++i) dev[i] = std::abs(v[i] - m);
  return median(std::move(dev));
}

}  // namespace sieve::defense_impl
