// batchnorm2d: forward and running stats against a naive implementation, backward against
// central finite differences in f64 (training and eval, with and without the fused ReLU).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "layers/layers.h"
#include "tests/common/check.h"

using namespace sieve;
using test::leaf;
using test::random_tensor;

namespace {

struct NaiveBatchNorm {
  std::vector<double> y, running_mean, running_var;
};

// Straight from the definition; reads the running stats before the op under test updates them.
NaiveBatchNorm naive_batchnorm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const Tensor& running_mean, const Tensor& running_var,
                               const BatchNormParams& p) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const double M = static_cast<double>(N * H * W);
  const std::vector<double> xv = x.to_double(), w = weight.to_double(), b = bias.to_double();
  NaiveBatchNorm r{std::vector<double>(xv.size()), running_mean.to_double(),
                   running_var.to_double()};
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t q) {
    return ((n * C + c) * H + h) * W + q;
  };
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0.0, var = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t q = 0; q < W; ++q) mean += xv[at(n, c, h, q)] / M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t q = 0; q < W; ++q) var += std::pow(xv[at(n, c, h, q)] - mean, 2) / M;
    const double use_mean = p.training ? mean : r.running_mean[c];
    const double use_var = p.training ? var : r.running_var[c];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t q = 0; q < W; ++q) {
          const int64_t i = at(n, c, h, q);
          const double z = (xv[i] - use_mean) / std::sqrt(use_var + p.eps) * w[c] + b[c];
          r.y[i] = p.fuse_relu ? std::max(z, 0.0) : z;
        }
    if (p.training) {
      r.running_mean[c] = (1 - p.momentum) * r.running_mean[c] + p.momentum * mean;
      r.running_var[c] = (1 - p.momentum) * r.running_var[c] + p.momentum * var * M / (M - 1);
    }
  }
  return r;
}

const char* mode_name(const BatchNormParams& p) {
  static const char* names[] = {"eval", "eval+relu", "train", "train+relu"};
  return names[2 * p.training + p.fuse_relu];
}

}  // namespace

TEST_CASE("batchnorm2d: forward matches a naive implementation") {
  for (DType dt : {DType::f32, DType::f64}) {
    const test::Tol tol = dt == DType::f32 ? test::kForward : test::Tol{1e-12, 1e-10};
    for (bool training : {true, false})
      for (bool relu : {false, true}) {
        const BatchNormParams p{training, 0.1, 1e-5, relu};
        const Tensor x = random_tensor({3, 4, 5, 6}, 1, -1.0, 3.0, dt);
        const Tensor w = random_tensor({4}, 2, 0.5, 1.5, dt);
        const Tensor b = random_tensor({4}, 3, -0.5, 0.5, dt);
        const Tensor rm = random_tensor({4}, 4, -0.5, 0.5, dt);
        const Tensor rv = random_tensor({4}, 5, 0.5, 2.0, dt);
        const NaiveBatchNorm ref = naive_batchnorm(x, w, b, rm, rv, p);
        const std::string what = std::string(mode_name(p)) + " " + dtype_name(dt);
        test::expect_close(batchnorm2d(x, w, b, rm, rv, p).to_double(), ref.y, tol, what + ": y");
        test::expect_close(rm.to_double(), ref.running_mean, tol, what + ": running_mean");
        test::expect_close(rv.to_double(), ref.running_var, tol, what + ": running_var");
      }
  }
}

TEST_CASE("batchnorm2d: running stats after two training steps") {
  const Tensor rm = random_tensor({2}, 10, -0.5, 0.5, DType::f64);
  const Tensor rv = random_tensor({2}, 11, 0.5, 2.0, DType::f64);
  const Tensor w = leaf(random_tensor({2}, 12, 0.5, 1.5, DType::f64));
  const Tensor b = leaf(random_tensor({2}, 13, -0.5, 0.5, DType::f64));
  const Tensor x1 = random_tensor({4, 2, 3, 3}, 14, -1.0, 3.0, DType::f64);
  const Tensor x2 = random_tensor({4, 2, 3, 3}, 15, -2.0, 1.0, DType::f64);
  std::vector<double> mean_hand = rm.to_double(), var_hand = rv.to_double();
  for (const Tensor& x : {x1, x2}) {
    const std::vector<double> xv = x.to_double();
    for (int c = 0; c < 2; ++c) {
      std::vector<double> v;  // the 36 values of channel c
      for (int n = 0; n < 4; ++n)
        for (int i = 0; i < 9; ++i) v.push_back(xv[(n * 2 + c) * 9 + i]);
      double mean = 0.0, ss = 0.0;
      for (double e : v) mean += e / 36.0;
      for (double e : v) ss += (e - mean) * (e - mean);
      mean_hand[c] = 0.9 * mean_hand[c] + 0.1 * mean;
      var_hand[c] = 0.9 * var_hand[c] + 0.1 * ss / 35.0;  // unbiased
    }
  }
  {
    const size_t before = autograd::live_nodes();
    const Tensor y1 = batchnorm2d(x1, w, b, rm, rv), y2 = batchnorm2d(x2, w, b, rm, rv);
    CHECK(autograd::live_nodes() == before + 2);  // the two outputs only: the running-stat update is not an op
  }
  CHECK_FALSE(rm.requires_grad());
  CHECK_FALSE(rv.requires_grad());
  test::expect_close(rm.to_double(), mean_hand, {1e-12, 1e-12}, "running_mean");
  test::expect_close(rv.to_double(), var_hand, {1e-12, 1e-12}, "running_var");

  const std::vector<double> mean_before = rm.to_double(), var_before = rv.to_double();
  batchnorm2d(x1, w, b, rm, rv, {.training = false});
  CHECK(rm.to_double() == mean_before);  // eval reads the running stats and leaves them alone
  CHECK(rv.to_double() == var_before);
}

TEST_CASE("batchnorm2d: backward matches finite differences") {
  const Tensor x = leaf(random_tensor({2, 3, 3, 4}, 20, -1.0, 2.0, DType::f64));
  const Tensor w = leaf(random_tensor({3}, 21, -1.5, 1.5, DType::f64));
  const Tensor b = leaf(random_tensor({3}, 22, -0.5, 0.5, DType::f64));
  const Tensor rm = random_tensor({3}, 23, -0.5, 0.5, DType::f64);
  const Tensor rv = random_tensor({3}, 24, 0.5, 2.0, DType::f64);
  for (bool training : {true, false})
    for (bool relu : {false, true}) {
      const BatchNormParams p{training, 0.1, 1e-5, relu};
      if (relu) {
        // Finite differences need every pre-activation further from the ReLU's kink than eps
        // moves it.
        autograd::NoGradGuard no_grad;
        const BatchNormParams pre{training, 0.1, 1e-5, false};
        const std::vector<double> z = batchnorm2d(x, w, b, rm.clone(), rv.clone(), pre).to_double();
        double nearest = INFINITY;
        for (double v : z) nearest = std::min(nearest, std::abs(v));
        REQUIRE(nearest > 1e-4);
      }
      const auto f = [p, rm, rv](const std::vector<Tensor>& in) {
        return batchnorm2d(in[0], in[1], in[2], rm, rv, p);
      };
      test::gradcheck(f, {x, w, b}, mode_name(p));
      test::gradcheck(f, {x.clone(), w, b.clone()}, std::string(mode_name(p)) + ", weight only");
      test::gradcheck(f, {x, w.clone(), b.clone()}, std::string(mode_name(p)) + ", x only");
    }
}

TEST_CASE("batchnorm2d: a fused capped ReLU (ReLU6) is exactly relu_capped after batch norm") {
  // The fused kernel's clamp and gradient mask against the two ops composed, in f64 and f32, on
  // the reference and the fast path (plain and blocked), in training and eval: outputs and all
  // three gradients bit for bit. Cap 1 puts many outputs at the cap (gradient 0 there) and many
  // at 0; MobileNetV2 runs it with cap 6. The fast kernels recompute the gradient's mask from x
  // (BatchNormBackward::scale) where the reference reads y: the bits must agree all the same.
  for (const DType dtype : {DType::f64, DType::f32})
    for (const bool fast : {false, true})
      for (const bool blocked : {false, true}) {
        if ((fast || blocked) && dtype == DType::f64) continue;  // f64 runs the reference only
        if (blocked && !fast) continue;
        for (const bool training : {true, false}) {
          const Shape shape{4, 16, 5, 3};
          const Tensor x = random_tensor(shape, 40, -2.0, 3.0, dtype), w = random_tensor({16}, 41, 0.5, 1.5, dtype);
          const Tensor b = random_tensor({16}, 42, -0.5, 0.5, dtype), seed = random_tensor(shape, 43, -1.0, 1.0, dtype);
          auto run = [&](bool fused) {
            test::FastPathScope scope(fast);
            const Tensor xl = leaf(x), wl = leaf(w), bl = leaf(b);
            const Tensor rm = Tensor::zeros({16}, dtype), rv = Tensor::full({16}, 1.0, dtype);
            const Tensor in = blocked ? to_blocked(xl) : xl;
            REQUIRE(in.blocked() == blocked);
            const BatchNormParams p{training, 0.1, 1e-5, fused, fused ? 1.0 : INFINITY};
            Tensor y = batchnorm2d(in, wl, bl, rm, rv, p);
            if (!fused) y = relu_capped(y, 1.0);
            autograd::backward(y, seed);
            return std::vector<std::vector<double>>{y.to_double(), xl.grad().to_double(), wl.grad().to_double(),
                                                    bl.grad().to_double()};
          };
          const auto fused = run(true), composed = run(false);
          INFO(dtype_name(dtype), fast ? " fast" : " reference", blocked ? " blocked" : "", training ? " train" : " eval");
          size_t at_cap = 0, at_zero = 0;
          for (double v : fused[0]) at_cap += v == 1.0, at_zero += v == 0.0;
          CHECK(at_cap > 20);
          CHECK(at_zero > 20);
          CHECK(fused == composed);
        }
      }
}

TEST_CASE("batchnorm2d: a fused residual join is exactly add_relu(batchnorm(x), residual)") {
  // relu(bn(x) + r) in one kernel (ResNet's join) against the two ops composed: f64 on the
  // reference, f32 on the fast path (plain and blocked, the residual in the other layout too),
  // training and eval, with gradients wanted by everything, by the residual only, and by all but
  // the residual: outputs and gradients bit for bit. (The f32 reference rounds once where the
  // composition rounds twice, so it is compared with a tolerance.)
  struct Case {
    DType dtype;
    bool fast, blocked, residual_blocked;
  };
  for (const Case c : {Case{DType::f64, false, false, false}, Case{DType::f32, false, false, false},
                       Case{DType::f32, true, false, false}, Case{DType::f32, true, true, true},
                       Case{DType::f32, true, true, false}})
    for (const bool training : {true, false})
      for (const int wanted : {0, 1, 2}) {  // 0: all, 1: the residual only, 2: all but the residual
        const Shape shape{3, 32, 4, 5};
        const Tensor x = random_tensor(shape, 50, -2.0, 3.0, c.dtype), r = random_tensor(shape, 51, -1.0, 1.0, c.dtype);
        const Tensor w = random_tensor({32}, 52, 0.5, 1.5, c.dtype), b = random_tensor({32}, 53, -0.5, 0.5, c.dtype);
        const Tensor seed = random_tensor(shape, 54, -1.0, 1.0, c.dtype);
        auto run = [&](bool fused) {
          test::FastPathScope scope(c.fast);
          const Tensor xl = wanted == 1 ? x.clone() : leaf(x), wl = wanted == 1 ? w.clone() : leaf(w);
          const Tensor bl = wanted == 1 ? b.clone() : leaf(b), rl = wanted == 2 ? r.clone() : leaf(r);
          const Tensor rm = Tensor::zeros({32}, c.dtype), rv = Tensor::full({32}, 1.0, c.dtype);
          const Tensor in = c.blocked ? to_blocked(xl) : xl, res = c.residual_blocked ? to_blocked(rl) : rl;
          REQUIRE(in.blocked() == c.blocked);
          const Tensor y = fused ? batchnorm2d(in, wl, bl, rm, rv, {training, 0.1, 1e-5, true}, res)
                                 : add_relu(batchnorm2d(in, wl, bl, rm, rv, {training, 0.1, 1e-5, false}), res);
          if (fused) CHECK(y.blocked() == c.blocked);  // x's layout, whatever the residual's
          autograd::backward(y, seed);
          std::vector<std::vector<double>> out{y.to_double()};
          for (const Tensor* t : {&xl, &wl, &bl, &rl})
            out.push_back(t->requires_grad() ? t->grad().to_double() : std::vector<double>{});
          return out;
        };
        const auto fused = run(true), composed = run(false);
        INFO(dtype_name(c.dtype), c.fast ? " fast" : " reference", c.blocked ? " blocked" : "",
             c.residual_blocked ? " (residual blocked)" : "", training ? " train" : " eval", ", wanted ", wanted);
        size_t zeros = 0;
        for (double v : fused[0]) zeros += v == 0.0;
        CHECK(zeros > 20);  // the ReLU is active
        CHECK(fused[4].empty() == (wanted == 2));
        if (c.dtype == DType::f32 && !c.fast) {
          for (size_t k = 0; k < fused.size(); ++k) test::expect_close(fused[k], composed[k], test::kGrad, "f32 reference");
        } else {
          CHECK(fused == composed);
        }
      }
}

TEST_CASE("batchnorm2d: bad inputs") {
  const Tensor x = random_tensor({2, 4, 3, 3}, 30);
  const Tensor c4 = random_tensor({4}, 31, 0.5, 1.5);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, c4, c4, random_tensor({3}, 32), c4),
                       doctest::Contains("batchnorm2d: running_mean must have shape (4,) to match "
                                         "the channels of x (2, 4, 3, 3), got (3,)"),
                       Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, random_tensor({4, 1}, 33), c4, c4, c4),
                       doctest::Contains("batchnorm2d: weight must have shape (4,)"), Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(random_tensor({4, 3, 3}, 34), c4, c4, c4, c4),
                       doctest::Contains("batchnorm2d: x (N, C, H, W) must be 4-d, got (4, 3, 3)"),
                       Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, c4, c4.to(DType::f64), c4, c4),
                       doctest::Contains("batchnorm2d: bias must be f32, got f64"), Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(random_tensor({1, 4, 1, 1}, 35), c4, c4, c4, c4),
                       doctest::Contains("batchnorm2d: training needs more than one value per "
                                         "channel, got x (1, 4, 1, 1)"),
                       Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, c4, c4, c4, c4, {.momentum = 1.5}),
                       doctest::Contains("batchnorm2d: momentum must be in [0, 1], got 1.5"),
                       Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, c4, c4, c4, c4, {.eps = 0.0}),
                       doctest::Contains("batchnorm2d: eps must be positive"), Error);
  CHECK_THROWS_WITH_AS(batchnorm2d(x, c4, c4, c4, Tensor()),
                       doctest::Contains("batchnorm2d: running_var is undefined"), Error);
  // One value per channel is fine in eval: the running stats normalise.
  CHECK(batchnorm2d(random_tensor({1, 4, 1, 1}, 36), c4, c4, c4, c4, {.training = false}).shape() ==
        Shape{1, 4, 1, 1});
}

TEST_CASE("batchnorm2d: num_batches_tracked is the buffer itself, as in PyTorch") {
  // A value written through named_buffers() is where counting continues (PyTorch: write 100,
  // one training forward -> 101); eval forwards do not count; load_state_dict sets it too.
  BatchNorm2d bn(3);
  Tensor* counter = nullptr;
  for (auto& [name, t] : bn.named_buffers())
    if (name == "num_batches_tracked") counter = t;
  REQUIRE(counter != nullptr);
  const Tensor x = random_tensor({2, 3, 4, 4}, 5);
  autograd::NoGradGuard no_grad;
  counter->fill_(100);
  bn.forward(x);
  CHECK(counter->item() == 101);
  bn.eval();
  bn.forward(x);
  CHECK(counter->item() == 101);
  bn.train();
  StateDict state = bn.state_dict();
  state["num_batches_tracked"] = Tensor::full({}, 7.0, DType::i64);
  bn.load_state_dict(state);
  bn.forward(x);
  CHECK(counter->item() == 8);
}
