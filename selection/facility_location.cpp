#include "selection/facility_location.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "selection/facility_location_cuda.h"
#endif

namespace sieve {

namespace {

template <class T>
void similarity_cpu(const T* x, int64_t m, int64_t d, T* sim) {
  SIEVE_CHECK(std::all_of(x, x + m * d, [](T v) { return std::isfinite(static_cast<double>(v)); }),
              "facility_location: points contain non-finite values");
  double top = 0;
#pragma omp parallel for schedule(dynamic, 8) reduction(max : top)
  for (int64_t i = 0; i < m; ++i) {
    sim[i * m + i] = T(0);
    for (int64_t j = i + 1; j < m; ++j) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double diff = static_cast<double>(x[i * d + k]) - static_cast<double>(x[j * d + k]);
        s += diff * diff;
      }
      const T dist = static_cast<T>(std::sqrt(s));
      sim[i * m + j] = sim[j * m + i] = dist;
      top = std::max(top, static_cast<double>(dist));
    }
  }
  SIEVE_CHECK(std::isfinite(top), "facility_location: distances overflow");
  for (int64_t e = 0; e < m * m; ++e) sim[e] = static_cast<T>(top - static_cast<double>(sim[e]));
}

// The one gain formula of the CPU path: the plain and the lazy greedy call it alike, and a sum of
// terms that each only shrink as the coverage grows only shrinks too (rounding is monotone), so
// stale gains stay upper bounds in floating point as well.
template <class T>
double gain_cpu(const T* row, const double* coverage, int64_t m) {
  double s = 0;
  for (int64_t i = 0; i < m; ++i) s += std::max(0.0, static_cast<double>(row[i]) - coverage[i]);
  return s;
}

template <class T>
std::vector<int64_t> greedy_cpu(const T* sim, int64_t m, int64_t budget, Greedy mode) {
  std::vector<double> coverage(static_cast<size_t>(m), 0.0), gains(static_cast<size_t>(m));
  auto all_gains = [&] {
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < m; ++j) gains[j] = gain_cpu(sim + j * m, coverage.data(), m);
  };
  std::vector<int64_t> chosen;
  std::vector<char> taken(static_cast<size_t>(m), 0);
  auto choose = [&](int64_t j) {
    chosen.push_back(j);
    taken[j] = 1;
    for (int64_t i = 0; i < m; ++i) coverage[i] = std::max(coverage[i], static_cast<double>(sim[j * m + i]));
  };
  if (mode == Greedy::plain) {
    while (static_cast<int64_t>(chosen.size()) < budget) {
      all_gains();
      int64_t best = -1;
      for (int64_t j = 0; j < m; ++j)
        if (!taken[j] && (best < 0 || gains[j] > gains[best])) best = j;
      choose(best);
    }
    return chosen;
  }
  // Queue of (stale gain, index): the largest gain first, the lower index on equal gains.
  using Entry = std::pair<double, int64_t>;
  auto after = [](const Entry& a, const Entry& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  };
  all_gains();
  std::priority_queue<Entry, std::vector<Entry>, decltype(after)> queue(after);
  for (int64_t j = 0; j < m; ++j) queue.push({gains[j], j});
  while (static_cast<int64_t>(chosen.size()) < budget) {
    const int64_t j = queue.top().second;
    queue.pop();
    const Entry fresh{gain_cpu(sim + j * m, coverage.data(), m), j};
    // Every other gain is at most its stale value, so a fresh gain ahead of the next stale one
    // is the plain greedy's choice.
    if (queue.empty() || !after(fresh, queue.top())) choose(j);
    else queue.push(fresh);
  }
  return chosen;
}

// weights[k] = the number of points whose most similar chosen point is chosen[k] (the earlier
// chosen on ties); row chosen[k] is column chosen[k] by symmetry.
template <class T>
std::vector<float> cluster_sizes_cpu(const T* sim, int64_t m, const std::vector<int64_t>& chosen) {
  std::vector<T> best(static_cast<size_t>(m), -std::numeric_limits<T>::infinity());
  std::vector<int64_t> arg(static_cast<size_t>(m), 0);
  for (size_t k = 0; k < chosen.size(); ++k) {
    const T* row = sim + chosen[k] * m;
    for (int64_t i = 0; i < m; ++i)
      if (row[i] > best[i]) best[i] = row[i], arg[i] = static_cast<int64_t>(k);
  }
  std::vector<float> weights(chosen.size(), 0.0f);
  for (int64_t i = 0; i < m; ++i) weights[arg[i]] += 1.0f;
  return weights;
}

#if SIEVE_WITH_CUDA
// The plain greedy on the GPU: one gains kernel per step, the argmax over the m gains on the host.
std::vector<int64_t> greedy_cuda(const Tensor& sim, int64_t budget, std::vector<float>* weights) {
  const int64_t m = sim.dim(0);
  Tensor coverage = Tensor::zeros({m}, DType::f32, Device::cuda);
  Tensor gains = Tensor::empty({m}, DType::f32, Device::cuda);
  std::vector<int64_t> chosen;
  std::vector<char> taken(static_cast<size_t>(m), 0);
  while (static_cast<int64_t>(chosen.size()) < budget) {
    cuda::facility_location_gains(sim.data<float>(), coverage.data<float>(), m, gains.data<float>());
    const std::vector<float> g = gains.to_vector<float>();
    int64_t best = -1;
    for (int64_t j = 0; j < m; ++j)
      if (!taken[j] && (best < 0 || g[j] > g[best])) best = j;
    chosen.push_back(best);
    taken[best] = 1;
    cuda::facility_location_cover(sim.data<float>(), m, best, coverage.data<float>());
  }
  if (weights) {
    const Tensor on_device = Tensor::from_vector(chosen, {budget}, Device::cuda);
    Tensor assignment = Tensor::empty({m}, DType::i64, Device::cuda);
    cuda::facility_location_assign(sim.data<float>(), m, on_device.data<int64_t>(), budget,
                                   assignment.data<int64_t>());
    weights->assign(static_cast<size_t>(budget), 0.0f);
    for (int64_t k : assignment.to_vector<int64_t>()) (*weights)[k] += 1.0f;
  }
  return chosen;
}
#endif

void check_points(const Tensor& points) {
  check_ndim("facility_location", points, "points", 2);
  SIEVE_CHECK(points.dim(0) >= 1 && points.dim(1) >= 1, "facility_location: points ", shape_str(points.shape()),
              " must have at least one row and one column");
}

}  // namespace

Tensor facility_location_similarity(const Tensor& points) {
  check_points(points);
  const int64_t m = points.dim(0), d = points.dim(1);
  Tensor sim = Tensor::empty({m, m}, points.dtype(), points.device());
  if (points.is_cuda()) {
    check_cuda_f32("facility_location", points);
    SIEVE_CHECK(m <= 65535 * 16, "facility_location: ", m, " points are more than one similarity matrix can hold");
    Tensor max_dist = Tensor::empty({1}, DType::f32, Device::cuda);
    SIEVE_IF_CUDA(cuda::facility_location_similarity(points.data<float>(), m, d, sim.data<float>(),
                                                     max_dist.data<float>()));
    SIEVE_CHECK(std::isfinite(max_dist.item()),
                "facility_location: points contain non-finite values or their distances overflow");
  } else {
    dispatch_float("facility_location", points.dtype(),
                   [&](auto tag) { similarity_cpu(points.data<decltype(tag)>(), m, d, sim.data<decltype(tag)>()); });
  }
  return sim;
}

Tensor facility_location_gains(const Tensor& similarity, const Tensor& coverage) {
  check_ndim("facility_location_gains", similarity, "similarity", 2);
  check_ndim("facility_location_gains", coverage, "coverage", 1);
  const int64_t m = similarity.dim(0);
  SIEVE_CHECK(similarity.dim(1) == m && coverage.dim(0) == m, "facility_location_gains: similarity ",
              shape_str(similarity.shape()), " must be (m, m) and coverage ", shape_str(coverage.shape()), " (m,)");
  check_same_device("facility_location_gains", similarity, coverage);
  check_dtype("facility_location_gains", coverage, "coverage", similarity.dtype());
  Tensor gains = Tensor::empty({m}, similarity.dtype(), similarity.device());
  if (similarity.is_cuda()) {
    check_cuda_f32("facility_location_gains", similarity);
    SIEVE_IF_CUDA(cuda::facility_location_gains(similarity.data<float>(), coverage.data<float>(), m,
                                                gains.data<float>()));
  } else {
    dispatch_float("facility_location_gains", similarity.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* s = similarity.data<T>();
      const std::vector<double> cov = coverage.to_double();
      T* g = gains.data<T>();
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < m; ++j) g[j] = static_cast<T>(gain_cpu(s + j * m, cov.data(), m));
    });
  }
  return gains;
}

std::vector<int64_t> facility_location_greedy(const Tensor& points, int64_t budget, std::vector<float>* weights,
                                              Greedy mode) {
  check_points(points);
  const int64_t m = points.dim(0);
  SIEVE_CHECK(budget >= 0 && budget <= m, "facility_location: budget ", budget, " outside [0, ", m, "]");
  if (weights) weights->clear();
  if (budget == 0) return {};
  const Tensor sim = facility_location_similarity(points);
  std::vector<int64_t> chosen;
  if (points.is_cuda()) {
    SIEVE_IF_CUDA(chosen = greedy_cuda(sim, budget, weights));
  } else {
    dispatch_float("facility_location", sim.dtype(), [&](auto tag) {
      using T = decltype(tag);
      chosen = greedy_cpu(sim.data<T>(), m, budget, mode);
      if (weights) *weights = cluster_sizes_cpu(sim.data<T>(), m, chosen);
    });
  }
  return chosen;
}

}  // namespace sieve
