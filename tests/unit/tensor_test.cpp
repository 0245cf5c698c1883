// Tensor basics, dtype conversions, views, the RNG and the autograd tape.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "models/model.h"
#include "tests/common/check.h"

using namespace sieve;

TEST_CASE("tensor: factories, shape and element access") {
  Tensor t = Tensor::full({2, 3}, 1.5);
  CHECK(t.numel() == 6);
  CHECK(t.dim(-1) == 3);
  CHECK(t.nbytes() == 24);
  for (double v : t.to_double()) CHECK(v == 1.5);
  Tensor z = Tensor::zeros({4}, DType::i64);
  for (int64_t v : z.to_vector<int64_t>()) CHECK(v == 0);
  CHECK_THROWS_WITH_AS(t.data<double>(), doctest::Contains("f32"), Error);
  CHECK_THROWS_WITH_AS(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}),
                       doctest::Contains("do not fill shape (2, 2)"), Error);
  CHECK(shape_str({7}) == "(7,)");
}

TEST_CASE("tensor: views share storage, clones do not") {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor v = t.view({3, 2});
  Tensor s = t.slice(2, {2, 2});
  v.data<float>()[0] = 10;
  CHECK(t.to_vector<float>()[0] == 10);
  CHECK(s.to_vector<float>() == std::vector<float>{2, 3, 4, 5});
  Tensor c = t.clone();
  c.data<float>()[1] = -1;
  CHECK(t.to_vector<float>()[1] == 1);
  CHECK_THROWS_AS(t.view({4, 2}), Error);
  CHECK_THROWS_AS(t.slice(4, {3}), Error);
}

TEST_CASE("tensor: dtype conversions round to nearest even") {
  const std::vector<float> x{1.0f, -2.5f, 3.14159265f, 65504.0f, 1e-8f, 1.00390625f};
  Tensor t = Tensor::from_vector(x, {6});
  const std::vector<double> bf = t.to(DType::bf16).to(DType::f32).to_double();
  const std::vector<double> hf = t.to(DType::f16).to(DType::f32).to_double();
  CHECK(bf[0] == 1.0);
  CHECK(bf[1] == -2.5);
  CHECK(bf[2] == doctest::Approx(3.140625));  // 3.14159 in bf16
  CHECK(bf[5] == 1.0);                        // tie 1 + 2^-8 rounds to even
  CHECK(hf[2] == doctest::Approx(3.140625));
  CHECK(hf[3] == 65504.0);
  CHECK(std::abs(hf[4] - 1e-8) < 6e-8);  // subnormal range of f16
  CHECK(f16_to_f32(f32_to_f16(1e6f)) == INFINITY);
  Tensor i = Tensor::from_vector(std::vector<int32_t>{-3, 7}, {2}).to(DType::f64);
  CHECK(i.to_vector<double>() == std::vector<double>{-3.0, 7.0});
}

TEST_CASE("rng: Philox is deterministic, counter-based and uniform") {
  // Known-answer test: Philox4x32-10 of counter 0, key 0 (Random123's published vector).
  const Philox4 r = philox4x32(0, 0);
  CHECK(r.v[0] == 0x6627e8d5u);
  CHECK(r.v[1] == 0xe169c58du);
  CHECK(r.v[2] == 0xbc57ac4cu);
  CHECK(r.v[3] == 0x9b00dbd8u);
  Generator g(42);
  const uint64_t a = g.reserve(10);
  CHECK(a == 0);
  CHECK(g.offset() == 10);
  double sum = 0, sq = 0;
  const int n = 20000;
  int outside = 0;
  for (int i = 0; i < n; ++i) {
    const double u = philox_uniform(7, i);
    outside += u < 0.0 || u >= 1.0;
    sum += u;
    const double z = philox_normal(7, i);
    sq += z * z;
  }
  CHECK(outside == 0);
  CHECK(sum / n == doctest::Approx(0.5).epsilon(0.02));
  CHECK(sq / n == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("autograd: gradients accumulate and the graph is freed by backward") {
  Tensor x = test::leaf(Tensor::full({3}, 2.0, DType::f64));
  Tensor y = Tensor::full({3}, 0.0, DType::f64);
  // A hand-made op: y = 3x, recorded with its backward closure.
  for (int64_t i = 0; i < 3; ++i) y.data<double>()[i] = 3 * x.data<double>()[i];
  const size_t before = autograd::live_nodes();
  autograd::record(y, {&x}, [x](const Tensor& gy) {
    Tensor gx = gy.clone();
    for (int64_t i = 0; i < 3; ++i) gx.data<double>()[i] *= 3;
    autograd::accumulate(x, gx);
  });
  CHECK(autograd::live_nodes() == before + 1);
  autograd::backward(y, Tensor::full({3}, 1.0, DType::f64));
  CHECK_THROWS_WITH_AS(autograd::backward(y, Tensor::full({3}, 1.0, DType::f64)),
                       doctest::Contains("has already been run and freed"), Error);
  CHECK(x.grad().to_double() == std::vector<double>{3, 3, 3});
  autograd::accumulate(x, Tensor::full({3}, 1.0, DType::f64));
  CHECK(x.grad().to_double() == std::vector<double>{4, 4, 4});
  CHECK_FALSE(y.grad().defined());  // intermediate gradients are freed
  {
    autograd::NoGradGuard ng;
    CHECK_FALSE(autograd::needs_grad({&x}));
  }
  CHECK(autograd::needs_grad({&x}));
}

TEST_CASE("autograd: a gradient handed to several tensors uncopied is copied on write") {
  // A sum hands its gradient to both inputs without copying it; when one of them then receives
  // another gradient, the sum is written to a new tensor, not into the shared one. Here a gets
  // dz twice (from z and from y), b once: b must see dz, not the 2 dz an in-place sum into the
  // shared buffer would leave there, and the caller's seed must not change.
  // x -> a = x + x, b = x + x; y = a + b; z = y + a: dz/dx = 2 (2 + 1) = 6.
  for (const DType dtype : {DType::f64, DType::f32}) {
    const Tensor x = test::leaf(test::random_tensor({4, 16, 8, 8}, 11, -1.0, 1.0, dtype));
    const Tensor a = add(x, x), b = add(x, x);
    const Tensor z = add(add(a, b), a);
    const Tensor seed = test::random_tensor(z.shape(), 12, -1.0, 1.0, dtype);
    const std::vector<double> seed_before = seed.to_double();
    autograd::backward(z, seed);
    CHECK(seed.to_double() == seed_before);
    const std::vector<double> gx = x.grad().to_double();
    size_t wrong = 0;
    for (size_t i = 0; i < gx.size(); ++i) {
      // 4 s + 2 s is 6 s rounded once to the dtype: exactly what the cast gives.
      const double want = dtype == DType::f32 ? double(float(6 * seed_before[i])) : 6 * seed_before[i];
      wrong += gx[i] != want;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("device: GPU detection never throws and parses flags") {
  const bool has_gpu = cuda_available();
  CHECK(parse_device("cpu") == Device::cpu);
  CHECK(parse_device("auto") == (has_gpu ? Device::cuda : Device::cpu));
  if (!has_gpu) CHECK_THROWS_WITH_AS(parse_device("cuda"), doctest::Contains("--device cuda"), Error);
  CHECK_THROWS_WITH_AS(parse_device("tpu"), doctest::Contains("not one of auto, cpu, cuda"), Error);
  CHECK_THROWS_WITH_AS(parse_precision("fp8"), doctest::Contains("--precision"), Error);
  MESSAGE("GPU: " << cuda_device_description());
}

TEST_CASE("autograd: forwards without backward keep nothing once their outputs are dropped") {
  // An evaluation loop with parameters that require grad and no NoGradGuard: each forward's graph
  // (its nodes and the activations they saved) dies with its outputs, so memory stays flat.
  ModelConfig cfg;
  cfg.num_classes = 10;
  auto model = make_model("resnet20", cfg);
  for (auto& [name, p] : model->named_parameters()) p->set_requires_grad(true);
  const Tensor x = test::random_tensor({4, 3, 32, 32}, 11);
  const size_t before = autograd::live_nodes();
  for (bool train : {false, true}) {
    train ? model->train() : model->eval();
    for (int i = 0; i < 20; ++i) {
      const ModelOutput out = model->forward(x);
      CHECK(out.logits.requires_grad());
      CHECK(autograd::live_nodes() > before);  // the graph exists while its outputs do
    }
    CHECK(autograd::live_nodes() == before);
  }
  // A backward frees the graph it ran while the output is still held.
  {
    const ModelOutput out = model->forward(x);
    const Tensor loss = cross_entropy(out.logits, Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {4}));
    CHECK(autograd::live_nodes() > before + 38);  // a node per convolution and per batch norm at least
    autograd::backward(loss);
    // Only the nodes of what is still held remain (emptied): loss, logits, features.
    CHECK(autograd::live_nodes() <= before + 3);
    for (const auto& named : model->named_parameters()) CHECK_MESSAGE(named.second->grad().defined(), named.first);
  }
  CHECK(autograd::live_nodes() == before);
}
