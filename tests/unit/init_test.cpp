// Initialisers: fan computations, empirical bounds / mean / std on large tensors, determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "engine/init.h"

using namespace sieve;

namespace {

struct Stats {
  double min, max, mean, std;
};

Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_double();
  Stats s{v[0], v[0], 0.0, 0.0};
  for (double x : v) {
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    s.mean += x;
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

}  // namespace

TEST_CASE("init: fan_in and fan_out of conv and linear weights") {
  CHECK(fan_in({64, 3, 3, 3}) == 27);
  CHECK(fan_out({64, 3, 3, 3}) == 576);
  CHECK(fan_in({10, 512}) == 512);
  CHECK(fan_out({10, 512}) == 10);
  CHECK(fan_in({32, 1, 3, 3}) == 9);  // depthwise conv: (C, 1, R, S)
  CHECK_THROWS_WITH_AS(
      fan_in({10}),
      doctest::Contains(
          "fan_in: fan in and fan out need a weight of at least 2 dimensions, got (10,)"),
      Error);
}

TEST_CASE("init: kaiming_uniform_ and the default bias init stay in their bounds") {
  // a = sqrt(5), fan_in 576: bound = 1/24; U(-b, b) has std b / sqrt(3).
  const Tensor w = Tensor::empty({256, 64, 3, 3});
  Generator gen(1);
  kaiming_uniform_(w, std::sqrt(5.0), gen);
  const double b = 1.0 / 24.0;
  Stats s = stats_of(w);
  const double n = static_cast<double>(w.numel());
  CHECK(s.min >= -b);
  CHECK(s.max <= b);
  CHECK(s.max > 0.999 * b);
  CHECK(s.min < -0.999 * b);
  CHECK(std::abs(s.mean) < 5.0 * b / std::sqrt(3.0 * n));
  CHECK(s.std == doctest::Approx(b / std::sqrt(3.0)).epsilon(0.01));

  // a = 0: bound = sqrt(6 / fan_in).
  const Tensor w0 = Tensor::empty({100, 300});
  kaiming_uniform_(w0, 0.0, gen);
  s = stats_of(w0);
  CHECK(s.max <= std::sqrt(6.0 / 300.0));
  CHECK(s.max > 0.99 * std::sqrt(6.0 / 300.0));

  const Tensor bias = Tensor::empty({20000});
  default_bias_init_(bias, 100, gen);
  s = stats_of(bias);
  CHECK(s.min >= -0.1);
  CHECK(s.max <= 0.1);
  CHECK(s.max > 0.099);
  CHECK(s.std == doctest::Approx(0.1 / std::sqrt(3.0)).epsilon(0.02));
}

TEST_CASE("init: kaiming_normal_fan_out_relu_, normal_, uniform_ and constant_") {
  // fan_out = 128 * 9: std = sqrt(2 / 1152).
  const Tensor w = Tensor::empty({128, 64, 3, 3});
  Generator gen(2);
  kaiming_normal_fan_out_relu_(w, gen);
  const double sd = std::sqrt(2.0 / 1152.0);
  Stats s = stats_of(w);
  CHECK(std::abs(s.mean) < 5.0 * sd / std::sqrt(static_cast<double>(w.numel())));
  CHECK(s.std == doctest::Approx(sd).epsilon(0.01));
  CHECK(s.max > 3.0 * sd);  // a normal, not a bounded distribution

  const Tensor x = Tensor::empty({100000}, DType::f64);
  normal_(x, 3.0, 2.0, gen);
  s = stats_of(x);
  CHECK(s.mean == doctest::Approx(3.0).epsilon(0.01));
  CHECK(s.std == doctest::Approx(2.0).epsilon(0.01));

  uniform_(x, -2.0, 5.0, gen);
  s = stats_of(x);
  CHECK(s.min >= -2.0);
  CHECK(s.max < 5.0);
  CHECK(s.mean == doctest::Approx(1.5).epsilon(0.01));

  const Tensor c = Tensor::empty({7});
  constant_(c, -0.75);
  CHECK(c.to_double() == std::vector<double>(7, -0.75));
  CHECK_THROWS_WITH_AS(uniform_(x, 1.0, 0.0, gen), doctest::Contains("uniform_: lo 1 > hi 0"),
                       Error);
  CHECK_THROWS_WITH_AS(uniform_(Tensor::empty({3}, DType::i64), 0.0, 1.0, gen),
                       doctest::Contains("uniform_: tensor must be floating point, got i64"),
                       Error);
}

TEST_CASE("init: a seed determines the values and each draw advances the generator") {
  const Tensor a = Tensor::empty({64, 27}), b = Tensor::empty({64, 27});
  Generator g1(7), g2(7), g3(8);
  kaiming_uniform_(a, std::sqrt(5.0), g1);
  kaiming_uniform_(b, std::sqrt(5.0), g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(g1.offset() == 64 * 27);
  kaiming_uniform_(b, std::sqrt(5.0), g2);
  CHECK(a.to_vector<float>() != b.to_vector<float>());
  kaiming_uniform_(b, std::sqrt(5.0), g3);
  CHECK(a.to_vector<float>() != b.to_vector<float>());

  // Element i takes counter offset + i: the first value is the generator's own next uniform.
  Generator g4(7), g5(7);
  uniform_(a, 0.0, 1.0, g4);
  CHECK(a.to_vector<float>()[0] == static_cast<float>(g5.uniform()));
}
