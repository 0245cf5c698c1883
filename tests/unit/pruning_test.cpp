// IMP masks: which tensors are prunable, exact per-layer and global sparsity from the quantile
// rule, pruned weights held at exactly 0 by SGD (momentum, weight decay) and through a
// safetensors round trip, batch norm and biases never pruned.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include "defense/pruning.h"
#include "engine/safetensors.h"
#include "engine/sgd.h"
#include "models/model.h"
#include "tests/common/check.h"

using namespace sieve;

namespace {

// Values +-scale * (1..n) in a seeded order: distinct magnitudes, so quantile counts are exact.
Tensor distinct(const Shape& shape, uint64_t seed, double scale) {
  const int64_t n = numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 1.0f);
  Generator gen(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.below(i)]);
  for (float& x : v) x *= static_cast<float>(gen.uniform() < 0.5 ? -scale : scale);
  return Tensor::from_vector(v, shape);
}

// A conv weight, batch norm, a linear weight and its bias in one flat buffer.
struct Params {
  std::vector<Tensor> tensors;
  FlatParameters flat;
  Params(const Shape& conv, double conv_scale, const Shape& fc, double fc_scale) {
    tensors = {distinct(conv, 1, conv_scale), distinct({conv[0]}, 2, 1.0), distinct({conv[0]}, 3, 1.0),
               distinct(fc, 4, fc_scale), distinct({fc[0]}, 5, 1.0)};
    const char* names[] = {"conv.weight", "bn.weight", "bn.bias", "fc.weight", "fc.bias"};
    NamedTensors named;
    for (size_t k = 0; k < tensors.size(); ++k) named.push_back({names[k], &tensors[k]});
    flat = flatten_parameters(named, Device::cpu);
  }
};

// Entries of parameter k: (value, mask) pairs.
std::vector<std::pair<double, double>> entries(const FlatParameters& p, size_t k, const Tensor& mask) {
  const std::vector<double> v = p.values.to_double(), m = mask.to_double();
  std::vector<std::pair<double, double>> out;
  for (int64_t e = p.offsets[k]; e < p.offsets[k] + numel(p.shapes[k]); ++e) out.push_back({v[e], m[e]});
  return out;
}

// Every pruned magnitude of parameter k is below every kept one.
bool prunes_smallest(const FlatParameters& p, size_t k, const Tensor& mask) {
  double max_pruned = -1, min_kept = INFINITY;
  for (auto [v, m] : entries(p, k, mask)) {
    if (m == 0) max_pruned = std::max(max_pruned, std::abs(v));
    else min_kept = std::min(min_kept, std::abs(v));
  }
  return max_pruned < min_kept;
}

// Non-prunable entries (batch norm, biases, alignment gaps) are 1.
bool others_kept(const FlatParameters& p, const Tensor& mask) {
  std::vector<double> m = mask.to_double();
  for (size_t k : prunable_parameters(p))
    for (int64_t e = p.offsets[k]; e < p.offsets[k] + numel(p.shapes[k]); ++e) m[e] = 1;
  return std::all_of(m.begin(), m.end(), [](double v) { return v == 1.0; });
}

}  // namespace

TEST_CASE("pruning: prunable tensors are the conv and linear weights, never batch norm or biases") {
  ModelConfig mc;
  mc.resnet20_option_a = false;  // 1x1 shortcut convs are prunable too
  auto model = make_model("resnet20", mc);
  const FlatParameters p = flatten_parameters(model->named_parameters(), Device::cpu);
  std::vector<std::string> names;
  for (size_t k : prunable_parameters(p)) names.push_back(p.names[k]);
  CHECK(names.front() == "conv1.weight");
  CHECK(names.back() == "linear.weight");
  CHECK(std::count(names.begin(), names.end(), "layer2.0.shortcut.0.weight") == 1);
  CHECK(names.size() == 19 + 2 + 1);  // 19 convs, 2 projection shortcuts, the classifier
  for (const std::string& n : names) {
    CHECK(n.find("bn") == std::string::npos);
    CHECK(n.find("bias") == std::string::npos);
  }
}

TEST_CASE("pruning: per-layer 0.3 leaves exactly 70% of each layer, then 49%") {
  Params w({4, 1, 5, 5}, 0.01, {10, 100}, 0.01);  // 100 and 1000 prunable weights
  const FlatParameters& p = w.flat;
  const Tensor m1 = magnitude_prune(p, Tensor(), 0.3, PruneScope::per_layer);
  CHECK(m1.dtype() == DType::f32);
  CHECK(m1.numel() == p.values.numel());
  SparsityReport r = sparsity(p, m1);
  CHECK(r.names == std::vector<std::string>{"conv.weight", "fc.weight"});
  CHECK(r.kept == std::vector<int64_t>{70, 700});
  CHECK(r.total == std::vector<int64_t>{100, 1000});
  CHECK(r.kept_fraction == doctest::Approx(0.7).epsilon(1e-15));
  CHECK(prunes_smallest(p, 0, m1));
  CHECK(prunes_smallest(p, 3, m1));
  CHECK(others_kept(p, m1));

  const Tensor m2 = magnitude_prune(p, m1, 0.3, PruneScope::per_layer);
  r = sparsity(p, m2);
  CHECK(r.kept == std::vector<int64_t>{49, 490});
  CHECK(r.kept_fraction == doctest::Approx(0.49).epsilon(1e-15));
  const std::vector<double> a = m1.to_double(), b = m2.to_double();
  for (size_t e = 0; e < a.size(); ++e) CHECK(b[e] <= a[e]);  // pruned stays pruned
  CHECK(prunes_smallest(p, 3, m2));
  CHECK(others_kept(p, m2));
}

TEST_CASE("pruning: on n distinct magnitudes floor(fraction * (n - 1)) + 1 are pruned") {
  for (int64_t n : {2, 3, 10, 11, 37, 64, 999})
    for (double f : {0.2, 0.3, 0.5}) {
      Params w({1, 1, 1, n}, 0.5, {2, 3}, 1.0);
      const Tensor m = magnitude_prune(w.flat, Tensor(), f, PruneScope::per_layer);
      const int64_t pruned = static_cast<int64_t>(static_cast<float>(f) * static_cast<float>(n - 1)) + 1;
      CAPTURE(n);
      CAPTURE(f);
      CHECK(sparsity(w.flat, m).kept[0] == n - pruned);
      CHECK(prunes_smallest(w.flat, 0, m));
    }
}

TEST_CASE("pruning: the quantile is over the surviving weights, |w| > 1e-9, as the study counts them") {
  // conv magnitudes 1..100 (times 0.01); ten of them set to 1e-10, alive under the mask. The study
  // leaves them out of the quantile's population (90 weights: 27 pruned besides them), yet
  // prunes them, being below it: 37 pruned in all. Counting them in would prune 30.
  Params w({4, 1, 5, 5}, 0.01, {10, 100}, 0.01);
  std::vector<float> v = w.flat.values.to_vector<float>();
  const int64_t conv = w.flat.offsets[0];
  for (int64_t e = conv; e < conv + 10; ++e) v[e] = v[e] > 0 ? 1e-10f : -1e-10f;
  w.flat.values.copy_(Tensor::from_vector(v, w.flat.values.shape()));
  const Tensor m = magnitude_prune(w.flat, Tensor(), 0.3, PruneScope::per_layer);
  CHECK(sparsity(w.flat, m).kept[0] == 100 - 37);
  for (int64_t e = conv; e < conv + 10; ++e) CHECK(m.to_double()[e] == 0.0);
  CHECK(prunes_smallest(w.flat, 0, m));
  CHECK(sparsity(w.flat, m).kept[1] == 700);  // the fc layer is untouched by the conv's tiny weights
}

TEST_CASE("pruning: global scope ranks all layers together") {
  Params w({4, 1, 5, 5}, 0.001, {1, 100}, 1.0);  // conv magnitudes 0.001..0.1, fc 1..100
  const FlatParameters& p = w.flat;
  const Tensor m1 = magnitude_prune(p, Tensor(), 0.3, PruneScope::global);
  CHECK(sparsity(p, m1).kept == std::vector<int64_t>{40, 100});  // 60 of 200, all from conv
  CHECK(sparsity(p, m1).kept_fraction == doctest::Approx(0.7).epsilon(1e-15));
  const Tensor m2 = magnitude_prune(p, m1, 0.3, PruneScope::global);
  CHECK(sparsity(p, m2).kept == std::vector<int64_t>{0, 98});  // 42 of 140: conv's 40, then fc's 2 smallest
  CHECK(prunes_smallest(p, 3, m2));
  CHECK(others_kept(p, m2));
  CHECK(sparsity(p, magnitude_prune(p, Tensor(), 0.3, PruneScope::per_layer)).kept == std::vector<int64_t>{70, 70});
  CHECK(parse_prune_scope("global") == PruneScope::global);
  CHECK_THROWS_WITH_AS(parse_prune_scope("layer"), doctest::Contains("--prune-scope: unknown scope 'layer'"), Error);
}

TEST_CASE("pruning: pruned weights stay exactly 0 through SGD with momentum and weight decay, and on disk") {
  Params w({4, 1, 5, 5}, 0.01, {10, 100}, 0.01);
  FlatParameters& p = w.flat;
  const std::vector<double> before = p.values.to_double();
  const Tensor mask = magnitude_prune(p, Tensor(), 0.3, PruneScope::per_layer);
  Sgd sgd(p.values, p.grads, SgdOptions{0.1, 0.9, 0.0, 5e-4, false});
  sgd.set_mask(mask);
  for (uint64_t step = 0; step < 4; ++step) {
    p.grads.copy_(test::random_tensor({p.grads.numel()}, 50 + step));
    sgd.step();
  }
  const std::vector<double> after = p.values.to_double(), m = mask.to_double();
  int64_t moved = 0;
  for (size_t e = 0; e < m.size(); ++e) {
    if (m[e] == 0) CHECK(after[e] == 0.0);
    else moved += after[e] != before[e];
  }
  // Every kept weight, batch-norm parameter, bias (and alignment-gap entry) was updated.
  CHECK(moved == static_cast<int64_t>(std::count(m.begin(), m.end(), 1.0)));

  test::TempDir dir;
  save_safetensors(dir / "values.safetensors", {{"values", p.values}});
  const std::vector<double> loaded = load_safetensors(dir / "values.safetensors").tensors.at("values").to_double();
  CHECK(loaded == after);
  // A later round ignores the pruned zeros: 49% of each layer remain.
  CHECK(sparsity(p, magnitude_prune(p, mask, 0.3, PruneScope::per_layer)).kept == std::vector<int64_t>{49, 490});
}

TEST_CASE("pruning: bad input") {
  Params w({2, 1, 2, 2}, 1.0, {2, 2}, 1.0);
  const FlatParameters& p = w.flat;
  CHECK_THROWS_WITH_AS(magnitude_prune(p, Tensor(), 1.0, PruneScope::global),
                       doctest::Contains("fraction must be in (0, 1), got 1"), Error);
  CHECK_THROWS_WITH_AS(magnitude_prune(p, Tensor::zeros({3}), 0.3, PruneScope::global),
                       doctest::Contains("mask of 3 entries for"), Error);
  CHECK_THROWS_WITH_AS(magnitude_prune(p, Tensor::full({p.values.numel()}, 0.5), 0.3, PruneScope::global),
                       doctest::Contains("mask entry 0.5 is not 0 or 1"), Error);
  CHECK_THROWS_WITH_AS(sparsity(p, Tensor::zeros({3})), doctest::Contains("sparsity: mask of 3 entries"), Error);
  Tensor b = distinct({5}, 1, 1.0);
  const FlatParameters only_bias = flatten_parameters({{"bn.bias", &b}}, Device::cpu);
  CHECK_THROWS_WITH_AS(magnitude_prune(only_bias, Tensor(), 0.3, PruneScope::per_layer),
                       doctest::Contains("no prunable"), Error);
}
