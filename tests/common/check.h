// Test helpers shared by the unit and GPU suites: the tolerance policy, random inputs,
// finite-difference gradient checks and CPU-vs-CUDA parity checks.
//
// Tolerance policy (one place): |a - r| <= atol + rtol * |r| elementwise.
//   fp32 vs the CPU reference: forward atol 1e-5 / rtol 1e-4, gradients 1e-4 / 1e-3.
//   f64 finite differences (eps 1e-6): atol 1e-7 / rtol 1e-5 unless a test says why not.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/tensor.h"

namespace sieve::test {

struct Tol {
  double atol, rtol;
};
inline constexpr Tol kForward{1e-5, 1e-4};
inline constexpr Tol kGrad{1e-4, 1e-3};
inline constexpr Tol kFiniteDiff{1e-7, 1e-5};

// How far actual is from reference: |a - r| <= atol + rtol * |r| per element, after the two
// agree on the class of non-finite values: a NaN reference wants NaN, an infinite one the same
// infinity, and a finite one a finite value (a bound from a non-finite reference would be inf or
// NaN and pass anything). worst = the element furthest outside its bound (a class mismatch is
// infinitely far).
struct CloseReport {
  size_t bad = 0, worst = 0;
  double max_err = 0.0;
};
CloseReport compare_close(const std::vector<double>& actual, const std::vector<double>& reference, Tol tol);

// Fails the current doctest case (with max error, its index and the first values) unless
// actual and reference have the same shape and agree within tol everywhere (compare_close).
void expect_close(const Tensor& actual, const Tensor& reference, Tol tol, const std::string& what);
void expect_close(const std::vector<double>& actual, const std::vector<double>& reference, Tol tol,
                  const std::string& what);

// Uniform values in [lo, hi) from Philox(seed); never all zeros.
Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
                     DType dtype = DType::f32, Device device = Device::cpu);

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Central-difference check of every input that requires grad: autograd's gradient of
// sum(f(inputs) * w) for a random w against (L(x + eps) - L(x - eps)) / 2eps, per element.
// Inputs should be f64 CPU tensors.
void gradcheck(const OpFn& f, const std::vector<Tensor>& inputs, const std::string& what,
               double eps = 1e-6, Tol tol = kFiniteDiff);

// Runs f on the CPU inputs and on their CUDA copies (same requires_grad), seeds both backward
// passes with the same random gradient, and compares the outputs and every input gradient.
void parity(const OpFn& f, const std::vector<Tensor>& cpu_inputs, const std::string& what,
            Tol forward = kForward, Tol grad = kGrad);

// Runs f twice on copies of the same f32 CPU inputs, once through the readable reference
// implementation (cpu_fast_path off) and once through the CPU fast path, seeds both backward
// passes with the same random gradient, and compares the outputs and every input gradient.
void fast_path_parity(const OpFn& f, const std::vector<Tensor>& inputs, const std::string& what,
                      Tol forward = kForward, Tol grad = kGrad);

// Turns the CPU fast path on or off for one scope and restores the previous setting.
struct FastPathScope {
  explicit FastPathScope(bool on) : previous(cpu_fast_path()) { set_cpu_fast_path(on); }
  ~FastPathScope() { set_cpu_fast_path(previous); }
  bool previous;
};

// A copy that requires grad (a fresh leaf).
Tensor leaf(const Tensor& t);

// Sets the matrix precision for one scope and restores the previous one, even when a check throws.
struct PrecisionScope {
  explicit PrecisionScope(Precision p) : previous(precision()) { set_precision(p); }
  ~PrecisionScope() { set_precision(previous); }
  Precision previous;
};

// A fresh folder under the system temp folder, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> listing() const;  // file names, sorted
};

}  // namespace sieve::test
