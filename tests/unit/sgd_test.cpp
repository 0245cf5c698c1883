// Sgd against torch.optim.SGD's formulas written out by hand, the pruning mask, checkpoint
// restore, and flatten_parameters (views into one buffer, gradients landing in the flat grads).
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/parameters.h"
#include "engine/sgd.h"
#include "tests/common/check.h"

using namespace sieve;

namespace {

// torch.optim.SGD, in double: d = g + wd * w; if momentum: buf = (first step) ? d :
// momentum * buf + (1 - dampening) * d; d = nesterov ? d + momentum * buf : buf; w -= lr * d.
struct ReferenceSgd {
  SgdOptions o;
  std::vector<double> w, buf;
  bool first = true;

  void step(const std::vector<double>& g) {
    buf.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      double d = g[i] + o.weight_decay * w[i];
      if (o.momentum != 0.0) {
        buf[i] = first ? d : o.momentum * buf[i] + (1.0 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      w[i] -= o.lr * d;
    }
    first = false;
  }
};

Tensor flat(const std::vector<float>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

// The gradient of step t for a 3-element problem: exact in f32, different every step.
std::vector<float> grad_at(int t) {
  const float s = 1.0f + 0.25f * static_cast<float>(t);
  return {0.5f * s, -1.0f * s, 2.0f - s};
}

}  // namespace

TEST_CASE("sgd: plain, momentum, weight decay, nesterov and dampening follow torch.optim.SGD") {
  struct Case {
    const char* name;
    SgdOptions o;
  };
  const Case cases[] = {
      {"plain", {0.1, 0.0, 0.0, 0.0, false}},
      {"momentum", {0.1, 0.9, 0.0, 0.0, false}},
      {"momentum + weight decay", {0.05, 0.9, 0.0, 0.1, false}},
      {"nesterov + weight decay", {0.1, 0.9, 0.0, 5e-4, true}},
      {"dampening", {0.1, 0.8, 0.5, 0.01, false}},
  };
  for (const Case& c : cases) {
    Tensor values = flat({1.0f, -2.0f, 0.5f});
    Tensor grads = Tensor::zeros({3});
    Sgd sgd(values, grads, c.o);
    ReferenceSgd ref{c.o, {1.0, -2.0, 0.5}, {}};
    for (int t = 0; t < 6; ++t) {
      grads.copy_(flat(grad_at(t)));
      const std::vector<float> g = grad_at(t);
      ref.step({g.begin(), g.end()});
      sgd.step();
      test::expect_close(values.to_double(), ref.w, {1e-6, 1e-6},
                         std::string(c.name) + " step " + std::to_string(t));
    }
    CHECK(sgd.steps() == 6);
    CHECK(sgd.momentum_buffer().defined() == (c.o.momentum != 0.0));
    if (c.o.momentum != 0.0)
      test::expect_close(sgd.momentum_buffer().to_double(), ref.buf, {1e-6, 1e-6},
                         std::string(c.name) + " buffer");
  }
}

TEST_CASE("sgd: hand-computed two steps with a constant gradient of 1") {
  // momentum 0.9, lr 0.1: buf = 1, 1.9 -> w drops 0.1, 0.19. Nesterov: d = 1.9, 2.71.
  // Dampening 0.5: the first step copies d (no dampening), then buf = 0.9 + 0.5 = 1.4.
  struct Case {
    SgdOptions o;
    double drop1, drop2;
  };
  for (const Case& c :
       {Case{{0.1, 0.9, 0.0, 0.0, false}, 0.1, 0.29}, Case{{0.1, 0.9, 0.0, 0.0, true}, 0.19, 0.461},
        Case{{0.1, 0.9, 0.5, 0.0, false}, 0.1, 0.24}}) {
    const Tensor values = flat({3.0f});
    Sgd sgd(values, flat({1.0f}), c.o);
    sgd.step();
    CHECK(values.item() == doctest::Approx(3.0 - c.drop1).epsilon(1e-6));
    sgd.step();
    CHECK(values.item() == doctest::Approx(3.0 - c.drop2).epsilon(1e-6));
  }
}

TEST_CASE("sgd: the mask holds pruned weights at exactly 0 through weight decay and momentum") {
  const SgdOptions o{0.1, 0.9, 0.0, 5e-2, true};
  const std::vector<float> w0 = {1.0f, -2.0f, 0.5f, 3.0f};
  Tensor values = flat(w0), grads = Tensor::zeros({4});
  Tensor plain_values = flat(w0), plain_grads = Tensor::zeros({4});
  Sgd sgd(values, grads, o), plain(plain_values, plain_grads, o);
  sgd.set_mask(flat({1.0f, 0.0f, 1.0f, 0.0f}));
  CHECK(values.to_vector<float>() == std::vector<float>{1.0f, 0.0f, 0.5f, 0.0f});
  for (int t = 0; t < 5; ++t) {
    const std::vector<float> g = {0.3f, -0.7f, 1.1f, 2.0f + static_cast<float>(t)};
    grads.copy_(flat(g));
    plain_grads.copy_(flat(g));
    sgd.step();
    plain.step();
    const std::vector<float> v = values.to_vector<float>(), p = plain_values.to_vector<float>();
    CHECK(v[1] == 0.0f);
    CHECK(v[3] == 0.0f);
    // Elements are independent, so the kept ones match an unmasked run exactly.
    CHECK(v[0] == p[0]);
    CHECK(v[2] == p[2]);
  }
  sgd.set_mask(Tensor());
  grads.copy_(flat({0.0f, 1.0f, 0.0f, 1.0f}));
  sgd.step();
  CHECK(values.to_vector<float>()[1] != 0.0f);
}

TEST_CASE("sgd: restoring the momentum buffer and step count continues the same run") {
  const SgdOptions o{0.1, 0.9, 0.1, 1e-3, false};
  Tensor values = flat({1.0f, -2.0f, 0.5f}), grads = Tensor::zeros({3});
  Sgd sgd(values, grads, o);
  const auto run = [](Sgd& opt, Tensor g, int from, int to) {
    for (int t = from; t < to; ++t) {
      g.copy_(flat(grad_at(t)));
      opt.step();
    }
  };
  run(sgd, grads, 0, 3);
  const Tensor saved_values = values.clone(), saved_buffer = sgd.momentum_buffer().clone();
  run(sgd, grads, 3, 5);

  Tensor resumed = saved_values.clone(), resumed_grads = Tensor::zeros({3});
  Sgd again(resumed, resumed_grads, o);
  again.restore(saved_buffer, 3);
  run(again, resumed_grads, 3, 5);
  CHECK(resumed.to_vector<float>() == values.to_vector<float>());
  CHECK(again.steps() == 5);

  sgd.zero_grad();
  CHECK(grads.to_double() == std::vector<double>{0, 0, 0});
  sgd.set_lr(0.01);
  CHECK(sgd.lr() == 0.01);
  CHECK(sgd.options().momentum == 0.9);
}

TEST_CASE("sgd: bad options and buffers are rejected") {
  const Tensor values = flat({1, 2, 3}), grads = flat({1, 1, 1});
  CHECK_THROWS_WITH_AS(Sgd(values, grads, {0.1, 0.0, 0.0, 0.0, true}),
                       doctest::Contains("sgd: nesterov needs momentum > 0 and dampening 0"),
                       Error);
  CHECK_THROWS_WITH_AS(Sgd(values, grads, {-0.1}),
                       doctest::Contains("sgd: lr must be >= 0, got -0.1"), Error);
  CHECK_THROWS_WITH_AS(Sgd(values, flat({1, 1}), {}),
                       doctest::Contains("sgd: grads (2,) and values (3,) differ in size"), Error);
  Sgd sgd(values, grads, {0.1, 0.9});
  CHECK_THROWS_WITH_AS(sgd.set_mask(flat({1, 0})),
                       doctest::Contains("sgd: mask (2,) and values (3,) differ in size"), Error);
  CHECK_THROWS_WITH_AS(sgd.set_mask(Tensor::full({3}, 1.0, DType::f64)),
                       doctest::Contains("sgd: mask must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(sgd.restore(Tensor(), 2),
                       doctest::Contains("sgd: restore needs the momentum buffer"), Error);
  Sgd no_momentum(values, grads, {});
  CHECK_THROWS_WITH_AS(no_momentum.restore(flat({0, 0, 0}), 2),
                       doctest::Contains("sgd: restore got a momentum buffer but momentum is 0"),
                       Error);
}

TEST_CASE(
    "flatten_parameters: views share one buffer and gradients accumulate into the flat grads") {
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector(std::vector<float>{-1, -2, -3, -4, -5}, {5});
  Tensor c = Tensor::from_vector(std::vector<float>(17, 0.25f), {17});
  const FlatParameters flat_params =
      flatten_parameters({{"a", &a}, {"b", &b}, {"c", &c}}, Device::cpu);
  CHECK(flat_params.offsets == std::vector<int64_t>{0, 16, 32});
  CHECK(flat_params.values.shape() == Shape{64});
  CHECK(flat_params.names == std::vector<std::string>{"a", "b", "c"});
  CHECK(flat_params.shapes[0] == Shape{2, 3});

  // Values preserved, gaps zero, parameters are views of the flat buffer.
  const std::vector<float> v = flat_params.values.to_vector<float>();
  for (int i = 0; i < 64; ++i) {
    const float expected = i < 6                 ? static_cast<float>(i + 1)
                           : (i >= 16 && i < 21) ? static_cast<float>(15 - i)
                           : (i >= 32 && i < 49) ? 0.25f
                                                 : 0.0f;
    CHECK(v[i] == expected);
  }
  CHECK(a.shape() == Shape{2, 3});
  CHECK(a.shares_storage(flat_params.values));
  CHECK(a.requires_grad());
  CHECK(a.grad().shares_storage(flat_params.grads));
  flat_params.values.data<float>()[17] = 42.0f;
  CHECK(b.to_vector<float>()[1] == 42.0f);

  // Gradients of a real op land in the flat gradient buffer and accumulate there.
  autograd::backward(scale(a, 2.5), Tensor::full({2, 3}, 1.0));
  autograd::backward(add(scale(a, 0.5), a), Tensor::full({2, 3}, 1.0));
  autograd::backward(scale(b, -1.0), Tensor::full({5}, 2.0));
  const std::vector<float> g = flat_params.grads.to_vector<float>();
  for (int i = 0; i < 64; ++i) {
    const float expected = i < 6 ? 4.0f : (i >= 16 && i < 21) ? -2.0f : 0.0f;
    CHECK(g[i] == expected);
  }

  // An optimiser step over the flat buffer moves the parameters themselves.
  Sgd sgd(flat_params.values, flat_params.grads, {0.5});
  sgd.step();
  CHECK(a.to_vector<float>()[0] == 1.0f - 0.5f * 4.0f);
  sgd.zero_grad();
  CHECK(a.grad().to_double() == std::vector<double>(6, 0.0));
}

TEST_CASE("flatten_parameters: bad parameter lists are rejected") {
  Tensor a = Tensor::full({3}, 1.0), b = Tensor::full({3}, 1.0, DType::f64), none;
  CHECK_THROWS_WITH_AS(flatten_parameters({{"a", &a}, {"b", &b}}, Device::cpu),
                       doctest::Contains("flatten_parameters: b must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(flatten_parameters({{"a", &a}, {"a2", &a}}, Device::cpu),
                       doctest::Contains("flatten_parameters: parameter 'a2' is listed twice"),
                       Error);
  Tensor a2 = Tensor::full({3}, 1.0);
  CHECK_THROWS_WITH_AS(flatten_parameters({{"a", &a}, {"a", &a2}}, Device::cpu),
                       doctest::Contains("flatten_parameters: name 'a' appears twice"), Error);
  CHECK_THROWS_WITH_AS(flatten_parameters({{"n", &none}}, Device::cpu),
                       doctest::Contains("flatten_parameters: parameter 'n' is undefined"), Error);
}
