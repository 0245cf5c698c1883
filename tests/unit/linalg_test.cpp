// engine/linalg on the CPU: means, covariance, products and projections against naive loops;
// the eigendecomposition through its defining identities; k-means on clusters with a known answer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/linalg.h"
#include "engine/rng.h"
#include "tests/common/check.h"

using namespace sieve;
using test::random_tensor;

namespace {

// Row-major (rows, cols) values of a 2-d tensor.
struct Mat {
  int64_t rows, cols;
  std::vector<double> v;
  double operator()(int64_t i, int64_t j) const { return v[i * cols + j]; }
};
Mat mat(const Tensor& t) { return {t.dim(0), t.dim(1), t.to_double()}; }

std::vector<double> naive_mean(const Mat& x) {
  std::vector<double> m(x.cols, 0.0);
  for (int64_t i = 0; i < x.rows; ++i)
    for (int64_t j = 0; j < x.cols; ++j) m[j] += x(i, j) / double(x.rows);
  return m;
}

std::vector<double> naive_covariance(const Mat& x, const std::vector<double>& m) {
  std::vector<double> c(x.cols * x.cols, 0.0);
  for (int64_t a = 0; a < x.cols; ++a)
    for (int64_t b = 0; b < x.cols; ++b)
      for (int64_t i = 0; i < x.rows; ++i) c[a * x.cols + b] += (x(i, a) - m[a]) * (x(i, b) - m[b]) / double(x.rows);
  return c;
}

// A random symmetric (d, d) f64 matrix with entries in [-1, 1].
Tensor random_symmetric(int64_t d, uint64_t seed) {
  const Mat b = mat(random_tensor({d, d}, seed, -1.0, 1.0, DType::f64));
  std::vector<double> a(d * d);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) a[i * d + j] = 0.5 * (b(i, j) + b(j, i));
  return Tensor::from_vector(a, {d, d});
}

// V^T diag(w) V, the matrix an eigendecomposition stands for.
std::vector<double> reconstruct(const SymmetricEigen& e) {
  const Mat v = mat(e.vectors);
  const std::vector<double> w = e.values.to_double();
  const int64_t d = v.rows;
  std::vector<double> a(d * d, 0.0);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = 0; k < d; ++k) a[i * d + j] += v(k, i) * w[k] * v(k, j);
  return a;
}

void check_eigen(const Tensor& a, const std::string& what, test::Tol tol = {1e-10, 1e-10}) {
  const SymmetricEigen e = symmetric_eigen(a);
  const int64_t d = a.dim(0);
  REQUIRE(e.values.shape() == Shape{d});
  REQUIRE(e.vectors.shape() == Shape{d, d});
  const std::vector<double> w = e.values.to_double();
  CHECK_MESSAGE(std::is_sorted(w.begin(), w.end()), what << ": eigenvalues ascending");
  test::expect_close(reconstruct(e), a.to_double(), tol, what + ": V^T diag(w) V = A");
  const Mat v = mat(e.vectors);
  std::vector<double> gram(d * d, 0.0), identity(d * d, 0.0);
  for (int64_t i = 0; i < d; ++i) {
    identity[i * d + i] = 1.0;
    for (int64_t j = 0; j < d; ++j)
      for (int64_t k = 0; k < d; ++k) gram[i * d + j] += v(i, k) * v(j, k);
  }
  test::expect_close(gram, identity, tol, what + ": rows orthonormal");
}

// Gaussian blobs: `per` points around each centre in `centers` (spread sd), labelled by blob.
Tensor blobs(const std::vector<std::vector<double>>& centers, int64_t per, double sd, uint64_t seed,
             std::vector<int64_t>* truth) {
  const int64_t d = static_cast<int64_t>(centers[0].size());
  std::vector<double> x;
  Generator gen(seed);
  for (int64_t i = 0; i < per; ++i)
    for (size_t c = 0; c < centers.size(); ++c) {  // interleaved, so a blob is not a row range
      for (int64_t j = 0; j < d; ++j) x.push_back(centers[c][j] + sd * gen.normal());
      truth->push_back(static_cast<int64_t>(c));
    }
  return Tensor::from_vector(x, {static_cast<int64_t>(truth->size()), d}).to(DType::f32);
}

// True when the two labelings are the same partition up to renaming the clusters.
bool same_partition(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  std::map<int64_t, int64_t> ab, ba;
  for (size_t i = 0; i < a.size(); ++i)
    if (ab.emplace(a[i], b[i]).first->second != b[i] || ba.emplace(b[i], a[i]).first->second != a[i])
      return false;
  return true;
}

}  // namespace

TEST_CASE("linalg: column_mean and covariance match naive loops") {
  for (const Shape& s : {Shape{1, 3}, Shape{37, 5}, Shape{300, 17}}) {  // 300 crosses a row block
    for (DType dt : {DType::f32, DType::f64}) {
      const Tensor x = random_tensor(s, 1 + s[0], -2.0, 3.0, dt);
      const std::string tag = cat(shape_str(s), " ", dtype_name(dt));
      const Mat xm = mat(x);
      const std::vector<double> m = naive_mean(xm);
      const Tensor mean = column_mean(x);
      CHECK(mean.dtype() == dt);
      const test::Tol tol = dt == DType::f32 ? test::Tol{1e-6, 1e-6} : test::Tol{1e-12, 1e-12};
      test::expect_close(mean.to_double(), m, tol, "column_mean " + tag);
      const Tensor cov = covariance(x, mean);
      CHECK(cov.shape() == Shape{s[1], s[1]});
      test::expect_close(cov.to_double(), naive_covariance(xm, mean.to_double()), tol, "covariance " + tag);
      const Mat cm = mat(cov);
      bool symmetric = true;
      for (int64_t i = 0; i < s[1]; ++i)
        for (int64_t j = 0; j < s[1]; ++j) symmetric = symmetric && cm(i, j) == cm(j, i);
      CHECK_MESSAGE(symmetric, "covariance " << tag << " is exactly symmetric");
    }
  }
}

TEST_CASE("linalg: matmul, project and gather_rows match naive loops") {
  const int64_t m = 7, k = 5, n = 3;
  for (DType dt : {DType::f32, DType::f64}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, 2, -1.0, 1.0, dt);
        const Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, 3, -1.0, 1.0, dt);
        const Mat am = mat(a), bm = mat(b);
        std::vector<double> ref(m * n, 0.0);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j)
            for (int64_t p = 0; p < k; ++p) ref[i * n + j] += (ta ? am(p, i) : am(i, p)) * (tb ? bm(j, p) : bm(p, j));
        const Tensor c = matmul(a, b, ta, tb);
        CHECK(c.shape() == Shape{m, n});
        test::expect_close(c.to_double(), ref, {1e-6, 1e-5}, cat("matmul ", ta, tb, " ", dtype_name(dt)));
      }
    const Tensor x = random_tensor({300, 6}, 4, -1.0, 2.0, dt);
    const Tensor mean = random_tensor({6}, 5, 0.0, 1.0, dt);
    const Tensor basis = random_tensor({2, 6}, 6, -1.0, 1.0, dt);
    const Mat xm = mat(x), bm = mat(basis);
    const std::vector<double> mv = mean.to_double();
    std::vector<double> ref(300 * 2, 0.0);
    for (int64_t i = 0; i < 300; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t p = 0; p < 6; ++p) ref[i * 2 + j] += (xm(i, p) - mv[p]) * bm(j, p);
    test::expect_close(project(x, mean, basis).to_double(), ref, {1e-6, 1e-5}, cat("project ", dtype_name(dt)));
    const Tensor g = gather_rows(x, {299, 0, 7, 7});
    CHECK(g.shape() == Shape{4, 6});
    const Mat gm = mat(g);
    for (int64_t j = 0; j < 6; ++j) {
      CHECK(gm(0, j) == xm(299, j));
      CHECK(gm(1, j) == xm(0, j));
      CHECK(gm(3, j) == xm(7, j));
    }
    CHECK(gather_rows(x, {}).shape() == Shape{0, 6});
  }
}

TEST_CASE("linalg: symmetric_eigen reconstructs the matrix with orthonormal eigenvectors") {
  for (int64_t d : {1, 2, 7, 64}) check_eigen(random_symmetric(d, 10 + d), cat("random ", d, "x", d));

  // Repeated eigenvalues: A = Q^T diag(1, 1, 1, 3, 3, 5) Q for an orthonormal Q.
  const Tensor q = symmetric_eigen(random_symmetric(6, 20)).vectors;
  const SymmetricEigen planted{Tensor::from_vector(std::vector<double>{1, 1, 1, 3, 3, 5}, {6}), q};
  const Tensor a = Tensor::from_vector(reconstruct(planted), {6, 6});
  check_eigen(a, "repeated eigenvalues");
  test::expect_close(symmetric_eigen(a).values.to_double(), {1, 1, 1, 3, 3, 5}, {1e-12, 1e-12},
                     "repeated eigenvalues: values");

  // f32 in, f32 out; the lower triangle is never read.
  Tensor sym = random_symmetric(5, 21).to(DType::f32);
  const SymmetricEigen e32 = symmetric_eigen(sym);
  CHECK(e32.values.dtype() == DType::f32);
  CHECK(e32.vectors.dtype() == DType::f32);
  test::expect_close(reconstruct(e32), sym.to_double(), {1e-5, 1e-5}, "f32 eigen");
  float* p = sym.data<float>();
  for (int64_t i = 1; i < 5; ++i)
    for (int64_t j = 0; j < i; ++j) p[i * 5 + j] = 100.0f;
  test::expect_close(symmetric_eigen(sym).values.to_double(), e32.values.to_double(), {0, 0},
                     "only the upper triangle is read");
}

TEST_CASE("linalg: kmeans recovers well-separated clusters, deterministically per seed") {
  std::vector<int64_t> truth;
  const Tensor x = blobs({{0, 0, 0, 0}, {10, 0, 0, 0}, {0, 10, 5, 0}}, 60, 1.0, 7, &truth);
  const KMeansResult r = kmeans(x, 3, 50, 1);
  CHECK(same_partition(r.assignment, truth));
  CHECK(r.centers.shape() == Shape{3, 4});
  // Centres are the members' means and the inertia their summed squared distances.
  const Mat xm = mat(x), cm = mat(r.centers);
  double inertia = 0.0;
  for (int64_t c = 0; c < 3; ++c) {
    std::vector<double> sum(4, 0.0);
    int64_t count = 0;
    for (int64_t i = 0; i < xm.rows; ++i)
      if (r.assignment[i] == c) {
        ++count;
        for (int64_t j = 0; j < 4; ++j) sum[j] += xm(i, j);
      }
    REQUIRE(count == 60);
    for (int64_t j = 0; j < 4; ++j) CHECK(cm(c, j) == doctest::Approx(sum[j] / 60.0).epsilon(1e-5));
  }
  for (int64_t i = 0; i < xm.rows; ++i)
    for (int64_t j = 0; j < 4; ++j) inertia += std::pow(xm(i, j) - cm(r.assignment[i], j), 2);
  CHECK(r.inertia == doctest::Approx(inertia).epsilon(1e-5));

  const KMeansResult again = kmeans(x, 3, 50, 1);
  CHECK(again.assignment == r.assignment);
  test::expect_close(again.centers, r.centers, {0, 0}, "same seed, same centres");
  for (uint64_t seed : {2, 3, 4}) CHECK(same_partition(kmeans(x.to(DType::f64), 3, 50, seed).assignment, truth));

  // k = 1: one centre at the mean; iterations = 0: k-means++ centres and their assignment.
  const KMeansResult one = kmeans(x, 1, 10, 5);
  test::expect_close(one.centers.view({4}), column_mean(x), {1e-6, 1e-5}, "k = 1 centre");
  CHECK(kmeans(x, 3, 0, 1).assignment.size() == truth.size());
}

TEST_CASE("linalg: kmeans ties go to the lower cluster index") {
  // Every point identical: all centres coincide and every point is tied between them.
  const Tensor x = Tensor::full({9, 3}, 1.5);
  const KMeansResult r = kmeans(x, 3, 5, 1);
  CHECK(r.assignment == std::vector<int64_t>(9, 0));
  CHECK(r.inertia == 0.0);
}

TEST_CASE("linalg: bad inputs name the function and the shapes") {
  const Tensor x = random_tensor({4, 3}, 1);
  CHECK_THROWS_WITH_AS(covariance(x, random_tensor({4}, 2)),
                       doctest::Contains("covariance: mean (4,) must be (3,)"), Error);
  CHECK_THROWS_WITH_AS(column_mean(random_tensor({4}, 2)), doctest::Contains("column_mean"), Error);
  CHECK_THROWS_WITH_AS(column_mean(Tensor::empty({0, 3})), doctest::Contains("has no rows"), Error);
  CHECK_THROWS_WITH_AS(symmetric_eigen(x), doctest::Contains("symmetric_eigen: a (4, 3) must be a non-empty square"),
                       Error);
  CHECK_THROWS_WITH_AS(matmul(x, x), doctest::Contains("matmul: a (4, 3) and b (4, 3) do not chain"), Error);
  CHECK_THROWS_WITH_AS(matmul(x, x.to(DType::f64), true), doctest::Contains("matmul"), Error);
  CHECK_THROWS_WITH_AS(project(x, column_mean(x), random_tensor({2, 4}, 3)),
                       doctest::Contains("project: basis (2, 4) must have 3 columns"), Error);
  CHECK_THROWS_WITH_AS(gather_rows(x, {0, 4}), doctest::Contains("gather_rows: row 4 is outside x (4, 3)"), Error);
  CHECK_THROWS_WITH_AS(kmeans(x, 5, 10, 1), doctest::Contains("kmeans: k = 5 clusters for 4 points"), Error);
  CHECK_THROWS_WITH_AS(kmeans(x.to(DType::i32), 2, 10, 1), doctest::Contains("kmeans: dtype i32"), Error);
  const std::vector<double> nan{NAN, 0, 0, 1};
  CHECK_THROWS_WITH_AS(symmetric_eigen(Tensor::from_vector(nan, {2, 2})), doctest::Contains("symmetric_eigen: a (2, 2) has non-finite entries"), Error);
}
