// CUDA engine/linalg against the CPU reference, and the defenses on GPU-resident features
// against the same defenses on the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "defense/defense.h"
#include "engine/linalg.h"
#include "engine/rng.h"
#include "tests/common/check.h"

using namespace sieve;
using test::random_tensor;

namespace {

// True when the two labelings are the same partition up to renaming the clusters.
bool same_partition(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  std::map<int64_t, int64_t> ab, ba;
  for (size_t i = 0; i < a.size(); ++i)
    if (ab.emplace(a[i], b[i]).first->second != b[i] || ba.emplace(b[i], a[i]).first->second != a[i])
      return false;
  return true;
}

// n points per blob around k centres 20 apart on a diagonal, spread 1; f32 (n * k, d).
Tensor separated_blobs(int64_t k, int64_t n, int64_t d, uint64_t seed) {
  Generator gen(seed);
  std::vector<double> x;
  for (int64_t i = 0; i < n * k; ++i)
    for (int64_t j = 0; j < d; ++j) x.push_back(20.0 * double((i * 7) % k) * (j % 2 ? 1.0 : -0.5) + gen.normal());
  return Tensor::from_vector(x, {n * k, d}).to(DType::f32);
}

}  // namespace

TEST_CASE("parity: column_mean, covariance, matmul, project, gather_rows") {
  for (const Shape& s : {Shape{1, 3}, Shape{37, 5}, Shape{1000, 64}, Shape{513, 129}}) {
    const Tensor x = random_tensor(s, 1 + s[0], -1.0, 2.0);
    const std::string tag = " " + shape_str(s);
    test::parity([](const auto& in) { return column_mean(in[0]); }, {x}, "column_mean" + tag);
    test::parity([](const auto& in) { return covariance(in[0], column_mean(in[0])); }, {x}, "covariance" + tag);
    const Tensor basis = random_tensor({3, s[1]}, 7);
    test::parity([](const auto& in) { return project(in[0], column_mean(in[0]), in[1]); }, {x, basis},
                 "project" + tag);
    test::parity([](const auto& in) { return gather_rows(in[0], {in[0].dim(0) - 1, 0, in[0].dim(0) / 2, 0}); }, {x},
                 "gather_rows" + tag, {0, 0});
  }
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int64_t m = 33, k = 129, n = 17;
      const Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, 2);
      const Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, 3);
      test::parity([ta, tb](const auto& in) { return matmul(in[0], in[1], ta, tb); }, {a, b},
                   cat("matmul trans_a ", ta, " trans_b ", tb));
    }
}

TEST_CASE("parity: symmetric_eigen values, and vectors up to sign") {
  for (int64_t d : {1, 2, 7, 64, 200}) {
    const std::vector<double> b = random_tensor({d, d}, 10 + d).to_double();
    std::vector<double> a(b.size());
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) a[i * d + j] = b[i * d + j] + b[j * d + i];
    const Tensor cpu = Tensor::from_vector(a, {d, d}).to(DType::f32);
    const SymmetricEigen ref = symmetric_eigen(cpu);
    const SymmetricEigen gpu = symmetric_eigen(cpu.to(Device::cuda));
    REQUIRE(gpu.values.is_cuda());
    REQUIRE(gpu.vectors.is_cuda());
    // Both solve the same f32-rounded matrix in f64: only the final rounding to f32 differs.
    test::expect_close(gpu.values, ref.values, test::kForward, cat("eigenvalues ", d, "x", d));
    // Random matrices have well-separated eigenvalues, so each eigenvector is unique up to sign.
    const std::vector<double> v = gpu.vectors.to_double(), r = ref.vectors.to_double();
    std::vector<double> dots(d), ones(d, 1.0);
    for (int64_t i = 0; i < d; ++i) {
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += v[i * d + j] * r[i * d + j];
      dots[i] = std::abs(dot);
    }
    test::expect_close(dots, ones, {1e-4, 0}, cat("|v . v_ref| ", d, "x", d));
  }
}

TEST_CASE("parity: kmeans assignments on well-separated clusters") {
  struct Case {
    int64_t k, n, d;
  };
  // d = 1, 3 and 37 leave lanes of the warp idle or wrap past 32; 20000 points span many grid
  // strides of warps.
  for (const Case& c : {Case{1, 50, 3}, Case{3, 41, 1}, Case{3, 67, 37}, Case{5, 33, 130}, Case{4, 5000, 64}}) {
    const Tensor x = separated_blobs(c.k, c.n, c.d, 11 + c.d);
    const std::string tag = cat(" k ", c.k, " (", c.n * c.k, ", ", c.d, ")");
    const KMeansResult ref = kmeans(x, c.k, 50, 3);
    const KMeansResult gpu = kmeans(x.to(Device::cuda), c.k, 50, 3);
    REQUIRE(gpu.centers.is_cuda());
    CHECK_MESSAGE(same_partition(gpu.assignment, ref.assignment), "kmeans partition" << tag);
    // Same seed, same k-means++ picks: the clusters carry the same numbers and centres.
    CHECK_MESSAGE(gpu.assignment == ref.assignment, "kmeans labels" << tag);
    test::expect_close(gpu.centers, ref.centers, test::kForward, "kmeans centres" + tag);
    CHECK(gpu.inertia == doctest::Approx(ref.inertia).epsilon(1e-4));
  }
  // Identical points: every distance ties, and the lower cluster index wins on the GPU too.
  const KMeansResult ties = kmeans(Tensor::full({40, 33}, 0.25, DType::f32, Device::cuda), 3, 5, 1);
  CHECK(ties.assignment == std::vector<int64_t>(40, 0));
}

TEST_CASE("parity: defenses score GPU features like CPU ones") {
  // Four classes in 24 dimensions plus 40 poisons labelled 0, shifted by 2 along every axis (10
  // units): every detector here removes exactly the poisons, with wide gaps at the cut.
  const int64_t classes = 4, d = 24, n = 800, poisons = 40;
  Generator gen(21);
  std::vector<double> x, logits;
  std::vector<int64_t> labels;
  std::vector<uint8_t> is_poison;
  for (int64_t i = 0; i < n; ++i) {
    const bool poison = i % 20 == 3;
    const int64_t label = poison ? 0 : i % classes;
    for (int64_t j = 0; j < d; ++j) x.push_back((j == label ? 6.0 : 0.0) + (poison ? 2.0 : 0.0) + gen.normal());
    for (int64_t c = 0; c < classes; ++c) logits.push_back(gen.normal() + (c == label ? (poison ? 5.0 : 2.0) : 0.0));
    labels.push_back(label);
    is_poison.push_back(poison);
  }
  const Tensor features = Tensor::from_vector(x, {n, d}).to(DType::f32);
  const Tensor logit_tensor = Tensor::from_vector(logits, {n, classes}).to(DType::f32);
  for (const std::string& name : defense_names()) {
    auto cpu = make_defense(name), gpu = make_defense(name);
    cpu->fit(features, labels, classes, double(poisons) / double(n));
    gpu->fit(features.to(Device::cuda), labels, classes, double(poisons) / double(n));
    const std::vector<double> ref = cpu->score(features, logit_tensor);
    const std::vector<double> got = gpu->score(features.to(Device::cuda), logit_tensor.to(Device::cuda));
    // The removals must agree exactly.
    CHECK_MESSAGE(detection_metrics(got, is_poison, poisons).removed_poisons ==
                      detection_metrics(ref, is_poison, poisons).removed_poisons,
                  name);
    // f32 statistics on the GPU against f64 ones on the CPU move the scores by about 1e-5
    // relative. Not compared for the defenses that cluster or filter: there a sample within
    // rounding of a decision (a 2-means boundary in a clean class, the filter's cut) may go
    // either way and legitimately move its class's scores.
    if (name == "confidence_filter" || name == "spectral_signature" || name == "fine_pruning")
      test::expect_close(got, ref, {1e-4, 1e-3}, name + ": scores");
  }
}
