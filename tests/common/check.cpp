#include "tests/common/check.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "engine/autograd.h"
#include "engine/rng.h"

namespace sieve::test {

CloseReport compare_close(const std::vector<double>& a, const std::vector<double>& r, Tol tol) {
  CloseReport rep;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < a.size() && i < r.size(); ++i) {
    double err = 0.0, excess = 0.0;
    if (std::isfinite(a[i]) && std::isfinite(r[i])) {
      err = std::abs(a[i] - r[i]);
      excess = err - (tol.atol + tol.rtol * std::abs(r[i]));
    } else {
      const bool same_class = (std::isnan(a[i]) && std::isnan(r[i])) || a[i] == r[i];  // NaN, or the same inf
      err = same_class ? 0.0 : INFINITY;
      excess = same_class ? -INFINITY : INFINITY;
    }
    if (excess > 0) ++rep.bad;
    if (excess > worst_excess) worst_excess = excess, rep.worst = i;
    rep.max_err = std::max(rep.max_err, err);
  }
  return rep;
}

void expect_close(const std::vector<double>& a, const std::vector<double>& r, Tol tol,
                  const std::string& what) {
  REQUIRE_MESSAGE(a.size() == r.size(), what << ": " << a.size() << " values vs " << r.size());
  const auto [bad, worst, max_err] = compare_close(a, r, tol);
  if (bad) {
    std::ostringstream os;
    os << what << ": " << bad << " of " << a.size() << " values outside atol " << tol.atol
       << " + rtol " << tol.rtol << "; max error " << max_err << " at [" << worst
       << "]: " << a[worst] << " vs reference " << r[worst] << "; first values:";
    for (size_t i = 0; i < std::min<size_t>(a.size(), 4); ++i) os << " " << a[i] << "/" << r[i];
    FAIL_CHECK(os.str());
  } else {
    CHECK_MESSAGE(true, what);
  }
}

void expect_close(const Tensor& actual, const Tensor& reference, Tol tol, const std::string& what) {
  REQUIRE_MESSAGE(actual.defined(), what << ": actual tensor is undefined");
  REQUIRE_MESSAGE(reference.defined(), what << ": reference tensor is undefined");
  REQUIRE_MESSAGE(actual.shape() == reference.shape(), what << ": shape " << shape_str(actual.shape())
                                                            << " vs " << shape_str(reference.shape()));
  expect_close(actual.to_double(), reference.to_double(), tol, what);
}

Tensor random_tensor(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype,
                     Device device) {
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = lo + (hi - lo) * philox_uniform_double(seed, i);
  return Tensor::from_vector(v, shape).to(dtype).to(device);
}

Tensor leaf(const Tensor& t) {
  Tensor c = t.clone();
  c.set_requires_grad(true);
  return c;
}

namespace {

double weighted_sum(const Tensor& y, const std::vector<double>& w) {
  const std::vector<double> v = y.to_double();
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * w[i];
  return s;
}

}  // namespace

void gradcheck(const OpFn& f, const std::vector<Tensor>& inputs, const std::string& what,
               double eps, Tol tol) {
  for (const Tensor& x : inputs)
    if (x.requires_grad()) x.set_grad(Tensor());
  const Tensor y = f(inputs);
  const Tensor w = random_tensor(y.shape(), 0x5eed, -1.0, 1.0, y.dtype());
  const std::vector<double> wv = w.to_double();
  autograd::backward(y, w);

  autograd::NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    REQUIRE_MESSAGE(x.dtype() == DType::f64, what << ": gradcheck input " << k << " must be f64");
    REQUIRE_MESSAGE(x.grad().defined(), what << ": input " << k << " got no gradient");
    double* p = x.data<double>();
    std::vector<double> numeric(static_cast<size_t>(x.numel()));
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double orig = p[j];
      p[j] = orig + eps;
      const double plus = weighted_sum(f(inputs), wv);
      p[j] = orig - eps;
      const double minus = weighted_sum(f(inputs), wv);
      p[j] = orig;
      numeric[j] = (plus - minus) / (2 * eps);
    }
    expect_close(x.grad().to_double(), numeric, tol, what + ": d/d input " + std::to_string(k));
  }
}

void parity(const OpFn& f, const std::vector<Tensor>& cpu_inputs, const std::string& what,
            Tol forward, Tol grad) {
  std::vector<Tensor> gpu_inputs;
  for (const Tensor& x : cpu_inputs) {
    Tensor g = x.to(Device::cuda);
    if (g.shares_storage(x)) g = g.clone();
    if (x.requires_grad()) g = leaf(g);
    gpu_inputs.push_back(g);
  }
  for (const Tensor& x : cpu_inputs)
    if (x.requires_grad()) x.set_grad(Tensor());
  const Tensor y_cpu = f(cpu_inputs);
  const Tensor seed = random_tensor(y_cpu.shape(), 0xfeed, -1.0, 1.0, y_cpu.dtype());
  if (y_cpu.requires_grad()) autograd::backward(y_cpu, seed);
  const Tensor y_gpu = f(gpu_inputs);
  REQUIRE_MESSAGE(y_gpu.is_cuda(), what << ": output of the CUDA run is not on the GPU");
  if (y_gpu.requires_grad()) autograd::backward(y_gpu, seed.to(Device::cuda));

  expect_close(y_gpu, y_cpu, forward, what + ": forward");
  for (size_t k = 0; k < cpu_inputs.size(); ++k) {
    if (!cpu_inputs[k].requires_grad()) continue;
    expect_close(gpu_inputs[k].grad(), cpu_inputs[k].grad(), grad,
                 what + ": gradient of input " + std::to_string(k));
  }
}

void fast_path_parity(const OpFn& f, const std::vector<Tensor>& inputs, const std::string& what, Tol forward,
                      Tol grad) {
  auto copies = [&] {
    std::vector<Tensor> c;
    for (const Tensor& x : inputs) c.push_back(x.requires_grad() ? leaf(x) : x.clone());
    return c;
  };
  auto run = [&](bool fast, const std::vector<Tensor>& in) {
    FastPathScope scope(fast);
    const Tensor y = f(in);
    const Tensor seed = random_tensor(y.shape(), 0xfeed, -1.0, 1.0, y.dtype());
    if (y.requires_grad()) autograd::backward(y, seed);
    return y;
  };
  const std::vector<Tensor> ref_in = copies(), fast_in = copies();
  const Tensor y_ref = run(false, ref_in);
  const Tensor y_fast = run(true, fast_in);
  expect_close(y_fast, y_ref, forward, what + ": forward");
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    expect_close(fast_in[k].grad(), ref_in[k].grad(), grad, what + ": gradient of input " + std::to_string(k));
  }
}

TempDir::TempDir() {
  static int counter = 0;
  path = std::filesystem::temp_directory_path() / cat("sieve_test_", ::getpid(), "_", counter++);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() { std::filesystem::remove_all(path); }

std::vector<std::string> TempDir::listing() const {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace sieve::test
