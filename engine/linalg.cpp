#include "engine/linalg.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>

#include "engine/blas.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/rng.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/linalg_cuda.h"
#include "engine/cuda/linear_cuda.h"
#endif

// LAPACK from OpenBLAS (no LAPACKE header on every machine): the Fortran symbol with the
// hidden string-length arguments gfortran appends for character arguments.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
                        double* w, double* work, const int* lwork, int* iwork, const int* liwork,
                        int* info, size_t jobz_len, size_t uplo_len);

namespace sieve {

namespace {

// Rows per block when the CPU reference widens f32 rows to f64: bounds the scratch memory
// whatever N is, and keeps each GEMM large enough for OpenBLAS.
constexpr int64_t kRowBlock = 256;

void check_matrix(const char* op, const Tensor& x, const char* name) {
  check_ndim(op, x, name, 2);
  if (x.is_cuda()) check_cuda_f32(op, x);
}

void check_mean(const char* op, const Tensor& x, const Tensor& mean) {
  SIEVE_CHECK(mean.ndim() == 1 && mean.dim(0) == x.dim(1), op, ": mean ", shape_str(mean.shape()),
              " must be ", shape_str({x.dim(1)}), ", one value per column of ", shape_str(x.shape()));
  check_dtype(op, mean, "mean", x.dtype());
  check_same_device(op, x, mean);
}

#if SIEVE_WITH_CUDA
// Feature statistics feed eigendecompositions, where TF32's 10-bit mantissa would swamp the
// small eigenvalues: the GEMMs here run in exact fp32 whatever the training precision is.
struct Fp32Gemm {
  Fp32Gemm() : previous(precision()) { set_precision(Precision::fp32); }
  ~Fp32Gemm() { set_precision(previous); }
  Precision previous;
};

// (n, d) x minus its broadcast row mean (d,), on the GPU.
Tensor centered_cuda(const Tensor& x, const Tensor& mean) {
  Tensor y = Tensor::empty_like(x);
  cuda::subtract_row(x.data<float>(), mean.data<float>(), y.data<float>(), x.dim(0), x.dim(1));
  return y;
}
#endif

// Rows [r0, r0 + rows) of x minus mean, widened to f64 into out (rows, d).
template <class T>
void centered_block(const T* x, const T* mean, int64_t r0, int64_t rows, int64_t d, double* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = double(x[(r0 + i) * d + j]) - double(mean[j]);
}

template <class T>
void store(const std::vector<double>& v, const Tensor& out) {
  T* o = out.data<T>();
  for (size_t i = 0; i < v.size(); ++i) o[i] = static_cast<T>(v[i]);
}

// The k-means steps that run on x's device.
struct Nearest {
  std::vector<int64_t> cluster;
  std::vector<double> distance;
};

Nearest nearest_center(const Tensor& x, const Tensor& centers) {
  const int64_t n = x.dim(0), d = x.dim(1), k = centers.dim(0);
  Nearest r;
  if (x.is_cuda()) {
    SIEVE_IF_CUDA({
      const Tensor cluster = Tensor::empty({n}, DType::i64, Device::cuda);
      const Tensor distance = Tensor::empty({n}, DType::f32, Device::cuda);
      cuda::kmeans_assign(x.data<float>(), centers.data<float>(), cluster.data<int64_t>(),
                          distance.data<float>(), n, d, k);
      r.cluster = cluster.to_vector<int64_t>();
      r.distance = distance.to_double();
    });
    return r;
  }
  r.cluster.assign(static_cast<size_t>(n), 0);
  r.distance.assign(static_cast<size_t>(n), 0.0);
  dispatch_float("kmeans", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* cp = centers.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      int64_t best_c = 0;
      for (int64_t c = 0; c < k; ++c) {
        double s = 0.0;
        for (int64_t j = 0; j < d; ++j) {
          const double diff = double(xp[i * d + j]) - double(cp[c * d + j]);
          s += diff * diff;
        }
        if (s < best) best = s, best_c = c;  // strict: the lower index keeps a tie
      }
      r.cluster[i] = best_c;
      r.distance[i] = best;
    }
  });
  return r;
}

void update_centers(const Tensor& x, const std::vector<int64_t>& cluster, const Tensor& centers) {
  const int64_t n = x.dim(0), d = x.dim(1), k = centers.dim(0);
  if (x.is_cuda()) {
    SIEVE_IF_CUDA({
      const Tensor assignment = Tensor::from_vector(cluster, {n}, Device::cuda);
      cuda::kmeans_update(x.data<float>(), assignment.data<int64_t>(), centers.data<float>(), n, d, k);
    });
    return;
  }
  dispatch_float("kmeans", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* cp = centers.data<T>();
    std::vector<double> sum(static_cast<size_t>(k * d), 0.0);
    std::vector<int64_t> count(static_cast<size_t>(k), 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = cluster[i];
      ++count[c];
      for (int64_t j = 0; j < d; ++j) sum[c * d + j] += double(xp[i * d + j]);
    }
    for (int64_t c = 0; c < k; ++c)
      if (count[c] > 0)
        for (int64_t j = 0; j < d; ++j) cp[c * d + j] = static_cast<T>(sum[c * d + j] / double(count[c]));
  });
}

// k-means++: the first centre uniformly, each next one with probability proportional to the
// squared distance to the nearest centre chosen so far.
Tensor kmeans_plus_plus(const Tensor& x, int64_t k, Generator& gen) {
  const int64_t n = x.dim(0), d = x.dim(1);
  Tensor centers = Tensor::empty({k, d}, x.dtype(), x.device());
  auto take = [&](int64_t c, int64_t row) { centers.slice(c * d, {d}).copy_(x.slice(row * d, {d})); };
  take(0, static_cast<int64_t>(gen.below(static_cast<uint64_t>(n))));
  for (int64_t c = 1; c < k; ++c) {
    const std::vector<double> dist = nearest_center(x, centers.slice(0, {c, d})).distance;
    double total = 0.0;
    for (double v : dist) total += v;
    const double u = gen.uniform() * total;
    int64_t pick = -1;
    double cumulative = 0.0;
    for (int64_t i = 0; i < n && pick < 0; ++i) {
      cumulative += dist[i];
      if (dist[i] > 0 && cumulative > u) pick = i;
    }
    // Every point already sits on a centre (or the distances are not finite): any point will do.
    if (pick < 0) pick = static_cast<int64_t>(gen.below(static_cast<uint64_t>(n)));
    take(c, pick);
  }
  return centers;
}

}  // namespace

Tensor column_mean(const Tensor& x) {
  check_matrix("column_mean", x, "x");
  const int64_t n = x.dim(0), d = x.dim(1);
  SIEVE_CHECK(n > 0, "column_mean: x ", shape_str(x.shape()), " has no rows");
  Tensor mean = Tensor::empty({d}, x.dtype(), x.device());
  if (x.is_cuda()) {
    // mean (1, d) = ones (1, n) x (n, d) / n through cuBLAS.
    SIEVE_IF_CUDA({
      const Tensor ones = Tensor::full({n}, 1.0, DType::f32, Device::cuda);
      Fp32Gemm fp32;
      cuda::gemm(false, false, 1, d, n, 1.0f / static_cast<float>(n), ones.data<float>(), n,
                 x.data<float>(), d, 0.0f, mean.data<float>(), d);
    });
    return mean;
  }
  dispatch_float("column_mean", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) sum[j] += double(xp[i * d + j]);
    for (double& s : sum) s /= double(n);
    store<T>(sum, mean);
  });
  return mean;
}

Tensor covariance(const Tensor& x, const Tensor& mean) {
  check_matrix("covariance", x, "x");
  check_mean("covariance", x, mean);
  const int64_t n = x.dim(0), d = x.dim(1);
  SIEVE_CHECK(n > 0, "covariance: x ", shape_str(x.shape()), " has no rows");
  Tensor cov = Tensor::empty({d, d}, x.dtype(), x.device());
  if (x.is_cuda()) {
    SIEVE_IF_CUDA({
      const Tensor c = centered_cuda(x, mean);
      Fp32Gemm fp32;
      cuda::gemm(true, false, d, d, n, 1.0f / static_cast<float>(n), c.data<float>(), d,
                 c.data<float>(), d, 0.0f, cov.data<float>(), d);
    });
    return cov;
  }
  dispatch_float("covariance", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::vector<double> acc(static_cast<size_t>(d * d), 0.0);
    std::vector<double> block(static_cast<size_t>(std::min(n, kRowBlock) * d));
    for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, n - r0);
      centered_block(x.data<T>(), mean.data<T>(), r0, rows, d, block.data());
      gemm<double>(true, false, d, d, rows, 1.0, block.data(), d, block.data(), d, 1.0, acc.data(), d);
    }
    // The upper triangle is the result; mirroring it makes the matrix exactly symmetric.
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = i; j < d; ++j) acc[j * d + i] = acc[i * d + j] = acc[i * d + j] / double(n);
    store<T>(acc, cov);
  });
  return cov;
}

SymmetricEigen symmetric_eigen(const Tensor& a) {
  check_matrix("symmetric_eigen", a, "a");
  const int64_t d = a.dim(0);
  SIEVE_CHECK(d > 0 && a.dim(1) == d, "symmetric_eigen: a ", shape_str(a.shape()),
              " must be a non-empty square matrix");
  SIEVE_CHECK(d <= INT_MAX, "symmetric_eigen: size ", d, " exceeds the 32-bit LAPACK interface");
  for (double v : a.to_double())
    SIEVE_CHECK(std::isfinite(v), "symmetric_eigen: a ", shape_str(a.shape()), " has non-finite entries");
  // A row-major matrix is its own column-major transpose, so LAPACK's lower triangle is our
  // upper one, and its eigenvector columns are our rows.
  Tensor vectors = a.dtype() == DType::f64 ? a.clone() : a.to(DType::f64);
  Tensor values = Tensor::empty({d}, DType::f64, a.device());
  int info = 0;
  if (a.is_cuda()) {
    SIEVE_IF_CUDA({
      const int64_t lwork = cuda::symmetric_eigen_workspace(vectors.data<double>(), values.data<double>(), d);
      const Tensor work = Tensor::empty({std::max<int64_t>(lwork, 1)}, DType::f64, Device::cuda);
      const Tensor dev_info = Tensor::empty({1}, DType::i32, Device::cuda);
      cuda::symmetric_eigen(vectors.data<double>(), values.data<double>(), d, work.data<double>(), lwork,
                            dev_info.data<int32_t>());
      info = dev_info.to_vector<int32_t>()[0];
    });
  } else {
    const int n = static_cast<int>(d);
    int lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0.0;
    dsyevd_("V", "L", &n, vectors.data<double>(), &n, values.data<double>(), &work_query, &lwork,
            &iwork_query, &liwork, &info, 1, 1);
    SIEVE_CHECK(info == 0, "symmetric_eigen: LAPACK dsyevd workspace query failed (info ", info, ")");
    lwork = static_cast<int>(work_query);
    liwork = iwork_query;
    std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
    std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
    dsyevd_("V", "L", &n, vectors.data<double>(), &n, values.data<double>(), work.data(), &lwork,
            iwork.data(), &liwork, &info, 1, 1);
  }
  SIEVE_CHECK(info == 0, "symmetric_eigen: the eigensolver failed on a ", shape_str(a.shape()),
              " matrix (info ", info, info < 0 ? ": a bad argument)" : ": no convergence)");
  return {values.to(a.dtype()), vectors.to(a.dtype())};
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_matrix("matmul", a, "a");
  check_matrix("matmul", b, "b");
  check_dtype("matmul", b, "b", a.dtype());
  check_same_device("matmul", a, b);
  const int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
  SIEVE_CHECK(k == kb, "matmul: a ", shape_str(a.shape()), trans_a ? "^T" : "", " and b ",
              shape_str(b.shape()), trans_b ? "^T" : "", " do not chain (", k, " vs ", kb, ")");
  Tensor c = Tensor::empty({m, n}, a.dtype(), a.device());
  if (k == 0) {
    c.zero_();
    return c;
  }
  if (a.is_cuda()) {
    SIEVE_IF_CUDA({
      Fp32Gemm fp32;
      cuda::gemm(trans_a, trans_b, m, n, k, 1.0f, a.data<float>(), a.dim(1), b.data<float>(), b.dim(1),
                 0.0f, c.data<float>(), n);
    });
    return c;
  }
  dispatch_float("matmul", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gemm<T>(trans_a, trans_b, m, n, k, T(1), a.data<T>(), a.dim(1), b.data<T>(), b.dim(1), T(0),
            c.data<T>(), n);
  });
  return c;
}

Tensor project(const Tensor& x, const Tensor& mean, const Tensor& basis) {
  check_matrix("project", x, "x");
  check_mean("project", x, mean);
  check_matrix("project", basis, "basis");
  check_dtype("project", basis, "basis", x.dtype());
  check_same_device("project", x, basis);
  const int64_t n = x.dim(0), d = x.dim(1), k = basis.dim(0);
  SIEVE_CHECK(basis.dim(1) == d, "project: basis ", shape_str(basis.shape()), " must have ", d,
              " columns like x ", shape_str(x.shape()));
  if (x.is_cuda()) SIEVE_IF_CUDA(return matmul(centered_cuda(x, mean), basis, false, true));
  Tensor y = Tensor::empty({n, k}, x.dtype(), x.device());
  dispatch_float("project", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::vector<double> b = basis.to_double();
    std::vector<double> block(static_cast<size_t>(std::min(n, kRowBlock) * d));
    std::vector<double> out(static_cast<size_t>(std::min(n, kRowBlock) * k));
    T* yp = y.data<T>();
    for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      const int64_t rows = std::min(kRowBlock, n - r0);
      centered_block(x.data<T>(), mean.data<T>(), r0, rows, d, block.data());
      gemm<double>(false, true, rows, k, d, 1.0, block.data(), d, b.data(), d, 0.0, out.data(), k);
      for (int64_t i = 0; i < rows * k; ++i) yp[r0 * k + i] = static_cast<T>(out[i]);
    }
  });
  return y;
}

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  check_matrix("gather_rows", x, "x");
  const int64_t n = x.dim(0), d = x.dim(1), count = static_cast<int64_t>(rows.size());
  for (int64_t r : rows)
    SIEVE_CHECK(r >= 0 && r < n, "gather_rows: row ", r, " is outside x ", shape_str(x.shape()));
  Tensor y = Tensor::empty({count, d}, x.dtype(), x.device());
  if (count == 0) return y;
  if (x.is_cuda()) {
    SIEVE_IF_CUDA({
      const Tensor index = Tensor::from_vector(rows, {count}, Device::cuda);
      cuda::gather_rows(x.data<float>(), index.data<int64_t>(), y.data<float>(), count, d);
    });
    return y;
  }
  const size_t row_bytes = static_cast<size_t>(d) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(y.raw());
  for (int64_t r = 0; r < count; ++r) std::copy_n(src + rows[r] * row_bytes, row_bytes, dst + r * row_bytes);
  return y;
}

KMeansResult kmeans(const Tensor& x, int64_t k, int64_t iterations, uint64_t seed) {
  check_matrix("kmeans", x, "x");
  SIEVE_CHECK(k >= 1 && k <= x.dim(0), "kmeans: k = ", k, " clusters for ", x.dim(0),
              " points (need 1 <= k <= N)");
  SIEVE_CHECK(iterations >= 0, "kmeans: iterations must be >= 0, got ", iterations);
  Generator gen(seed);
  KMeansResult r;
  r.centers = kmeans_plus_plus(x, k, gen);
  Nearest near = nearest_center(x, r.centers);
  for (int64_t it = 0; it < iterations; ++it) {
    update_centers(x, near.cluster, r.centers);
    Nearest next = nearest_center(x, r.centers);
    const bool changed = next.cluster != near.cluster;
    near = std::move(next);
    if (!changed) break;
  }
  r.assignment = std::move(near.cluster);
  for (double v : near.distance) r.inertia += v;
  return r;
}

}  // namespace sieve
