// CUDA Sgd and flat parameters against the CPU. The element update is the same sequence of
// f32 roundings on both sides (engine/sgd.h: _rn intrinsics on the GPU, no FMA contraction on
// the x86-64 host build), so values and momentum buffers are compared exactly.
#include <doctest/doctest.h>

#include "engine/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/parameters.h"
#include "engine/sgd.h"
#include "tests/common/check.h"

using namespace sieve;
using test::random_tensor;

namespace {

// Runs `steps` steps on `device` from the same start, with new random gradients each step and
// an lr change half-way; returns {values, momentum buffer or empty}.
std::pair<Tensor, Tensor> run_sgd(Device device, const SgdOptions& o, bool masked, int64_t n,
                                  int steps) {
  Tensor values = random_tensor({n}, 1, -1.0, 1.0, DType::f32, device);
  Tensor grads = Tensor::zeros({n}, DType::f32, device);
  Sgd sgd(values, grads, o);
  if (masked) {
    std::vector<float> m = random_tensor({n}, 2).to_vector<float>();
    for (float& e : m) e = e > 0.2f ? 1.0f : 0.0f;
    sgd.set_mask(Tensor::from_vector(m, {n}, device));
  }
  for (int t = 0; t < steps; ++t) {
    if (t == steps / 2) sgd.set_lr(o.lr * 0.3);
    grads.copy_(random_tensor({n}, 100 + t, -2.0, 2.0));
    sgd.step();
  }
  return {values.to(Device::cpu),
          sgd.momentum_buffer().defined() ? sgd.momentum_buffer().to(Device::cpu) : Tensor()};
}

}  // namespace

TEST_CASE("parity: fused SGD step sequences with and without a mask (exact)") {
  const SgdOptions options[] = {
      {0.1, 0.0, 0.0, 0.0, false}, {0.1, 0.9, 0.0, 0.0, false},  {0.05, 0.9, 0.0, 5e-4, false},
      {0.1, 0.9, 0.0, 1e-2, true}, {0.1, 0.8, 0.3, 1e-3, false},
  };
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{100003}}) {
    for (const SgdOptions& o : options) {
      for (bool masked : {false, true}) {
        const std::string tag = "n " + std::to_string(n) + " momentum " +
                                std::to_string(o.momentum) + " nesterov " +
                                std::to_string(o.nesterov) + (masked ? " masked" : "");
        const auto [cpu_values, cpu_buffer] = run_sgd(Device::cpu, o, masked, n, 5);
        const auto [gpu_values, gpu_buffer] = run_sgd(Device::cuda, o, masked, n, 5);
        test::expect_close(gpu_values, cpu_values, {0, 0}, "sgd values " + tag);
        if (cpu_buffer.defined())
          test::expect_close(gpu_buffer, cpu_buffer, {0, 0}, "sgd buffer " + tag);
      }
    }
  }
}

TEST_CASE("parity: flatten_parameters on the GPU, gradients into the flat buffer, one step") {
  Tensor a = random_tensor({3, 5}, 3), b = random_tensor({7}, 4);
  const std::vector<double> a0 = a.to_double();
  const FlatParameters flat = flatten_parameters({{"a", &a}, {"b", &b}}, Device::cuda);
  CHECK(a.is_cuda());
  CHECK(a.shares_storage(flat.values));
  CHECK(a.to_double() == a0);
  autograd::backward(scale(a, 1.5), Tensor::full({3, 5}, 2.0, DType::f32, Device::cuda));
  const std::vector<float> g = flat.grads.to_vector<float>();
  for (int64_t i = 0; i < flat.grads.numel(); ++i) CHECK(g[i] == (i < 15 ? 3.0f : 0.0f));
  Sgd sgd(flat.values, flat.grads, {0.5});
  sgd.step();
  CHECK(a.to_vector<float>()[0] == static_cast<float>(a0[0]) - 0.5f * 3.0f);
}
