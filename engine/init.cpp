#include "engine/init.h"

#include <cmath>
#include <vector>

namespace sieve {

namespace {

// Fills w (any floating dtype and device) with transform(i, counter) for element i, where
// counter = the start of w.numel() counters reserved from gen.
template <class F>
void fill_from(const char* op, const Tensor& w, Generator& gen, F&& transform) {
  SIEVE_CHECK(w.defined(), op, ": tensor is undefined");
  SIEVE_CHECK(is_floating(w.dtype()), op, ": tensor must be floating point, got ",
              dtype_name(w.dtype()));
  const int64_t n = w.numel();
  const uint64_t start = gen.reserve(static_cast<uint64_t>(n));
  std::vector<double> v(static_cast<size_t>(n));
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) v[i] = transform(start + static_cast<uint64_t>(i));
  Tensor target = w;  // shares w's storage; copy_ is not const
  target.copy_(Tensor::from_vector(v, w.shape()).to(w.dtype()));
}

void check_weight_shape(const char* op, const Shape& s) {
  SIEVE_CHECK(s.size() >= 2, op,
              ": fan in and fan out need a weight of at least 2 dimensions, got ", shape_str(s));
}

int64_t receptive_field(const Shape& s) {
  int64_t r = 1;
  for (size_t i = 2; i < s.size(); ++i) r *= s[i];
  return r;
}

}  // namespace

int64_t fan_in(const Shape& s) {
  check_weight_shape("fan_in", s);
  return s[1] * receptive_field(s);
}

int64_t fan_out(const Shape& s) {
  check_weight_shape("fan_out", s);
  return s[0] * receptive_field(s);
}

void uniform_(const Tensor& w, double lo, double hi, Generator& gen) {
  SIEVE_CHECK(lo <= hi, "uniform_: lo ", lo, " > hi ", hi);
  const uint64_t seed = gen.seed();
  fill_from("uniform_", w, gen,
            [=](uint64_t ctr) { return lo + (hi - lo) * philox_uniform_double(seed, ctr); });
}

void normal_(const Tensor& w, double mean, double std, Generator& gen) {
  SIEVE_CHECK(std >= 0.0, "normal_: std must be >= 0, got ", std);
  const uint64_t seed = gen.seed();
  fill_from("normal_", w, gen, [=](uint64_t ctr) { return mean + std * philox_normal(seed, ctr); });
}

void kaiming_uniform_(const Tensor& w, double a, Generator& gen) {
  const int64_t fan = fan_in(w.shape());
  SIEVE_CHECK(fan > 0, "kaiming_uniform_: weight ", shape_str(w.shape()), " has fan_in 0");
  const double bound = std::sqrt(6.0 / ((1.0 + a * a) * static_cast<double>(fan)));
  uniform_(w, -bound, bound, gen);
}

void default_bias_init_(const Tensor& b, int64_t fan_in, Generator& gen) {
  SIEVE_CHECK(fan_in > 0, "default_bias_init_: fan_in must be > 0, got ", fan_in);
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  uniform_(b, -bound, bound, gen);
}

void kaiming_normal_fan_out_relu_(const Tensor& w, Generator& gen) {
  const int64_t fan = fan_out(w.shape());
  SIEVE_CHECK(fan > 0, "kaiming_normal_fan_out_relu_: weight ", shape_str(w.shape()),
              " has fan_out 0");
  normal_(w, 0.0, std::sqrt(2.0 / static_cast<double>(fan)), gen);
}

void constant_(const Tensor& w, double value) {
  SIEVE_CHECK(w.defined(), "constant_: tensor is undefined");
  Tensor target = w;
  target.fill_(value);
}

}  // namespace sieve
