// Whole training steps on the GPU against the CPU, a GPU run killed and resumed, and proof that
// --precision tf32 really runs on TF32 tensor cores.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/ops/conv2d.h"
#include "engine/ops/linear.h"
#include "models/model.h"
#include "tests/common/check.h"
#include "training/trainer.h"

using namespace sieve;
using test::random_tensor;

namespace {

TrainConfig step_config(const std::string& checkpoint = "") {
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 16;
  c.lr = 0.1;
  c.seed = 5;
  c.checkpoint = checkpoint;
  c.progress = false;
  return c;
}

// Every buffer of the model (BN running statistics and batch counters), in order.
std::vector<double> buffers_of(Model& model) {
  std::vector<double> all;
  for (const auto& [name, buffer] : model.named_buffers()) {
    const std::vector<double> v = buffer->to_double();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

// Parameters and buffers (BN running statistics) after three SGD steps on the same batches.
struct StepResult {
  std::vector<double> parameters, buffers;
  std::vector<double> losses;
};

StepResult three_steps(const std::string& name, Device device) {
  const DeviceDataset data = to_device(make_synthetic(48, 10, 3), device);
  ModelConfig mc;
  mc.seed = 11;
  auto model = make_model(name, mc);
  Trainer t(*model, data, nullptr, step_config());
  const Tensor correct = Tensor::zeros({1}, DType::i64, device);
  StepResult r;
  for (int64_t step = 0; step < 3; ++step) {
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < 16; ++i) idx.push_back(step * 16 + i);
    r.losses.push_back(t.train_step(idx, static_cast<uint64_t>(step) * 16, 0.1, correct, 0, step));
  }
  r.parameters = t.parameters().values.to_double();
  r.buffers = buffers_of(*model);
  return r;
}

}  // namespace

TEST_CASE("parity: three SGD steps of ResNet-20 and MobileNetV2 on the GPU match the CPU") {
  // Tolerances: every op agrees at STYLE's fp32 gradient tolerances (1e-4 / 1e-3); three steps at
  // lr 0.1 with momentum carry those differences into the weights, scaled by lr and summed over
  // the steps, so the weights get 3 * 0.1 * the gradient policy, BN statistics the forward one.
  for (const char* name : {"resnet20", "mobilenet_v2"}) {
    CAPTURE(name);
    const StepResult cpu = three_steps(name, Device::cpu), gpu = three_steps(name, Device::cuda);
    test::expect_close(gpu.losses, cpu.losses, test::kGrad, std::string(name) + " losses");
    test::expect_close(gpu.parameters, cpu.parameters, {3e-5, 3e-4}, std::string(name) + " weights after 3 steps");
    test::expect_close(gpu.buffers, cpu.buffers, test::kForward, std::string(name) + " BN running statistics");
  }
}

TEST_CASE("GPU training killed after an epoch resumes to bit-identical weights") {
  test::TempDir dir;
  const DeviceDataset data = to_device(make_synthetic(64, 4, 1), Device::cuda);
  auto run = [&](const std::string& checkpoint, int64_t stop_after) {
    ModelConfig mc;
    mc.num_classes = 4;
    auto model = make_model("resnet20", mc);
    Trainer t(*model, data, nullptr, step_config(checkpoint));
    t.on_epoch_end([&](int64_t epoch) {
      if (stop_after > 0 && epoch + 1 > stop_after) throw std::runtime_error("killed");
    });
    t.fit();
    return t.parameters().values.to_double();
  };
  const std::vector<double> whole = run("", 0);
  const std::string ckpt = dir / "checkpoint.safetensors";
  CHECK_THROWS_WITH(run(ckpt, 1), "killed");
  CHECK(run(ckpt, 0) == whole);  // deterministic algorithms, chosen without timing
}

TEST_CASE("TF32 is really used under --precision tf32 (and not under fp32)") {
  // 1 + 2^-12 needs 12 mantissa bits; TF32 keeps 10, so each product reads 1 and a 1024-long sum
  // gives 1024 instead of fp32's 1024.25: a difference no fp32 rounding (~1e-4 here) can explain.
  const float v = 1.0f + 1.0f / 4096.0f;
  const Tensor x = Tensor::full({4, 1024}, v, DType::f32, Device::cuda);
  const Tensor w = Tensor::full({8, 1024}, 1.0, DType::f32, Device::cuda);
  const Tensor xc = Tensor::full({2, 1024, 2, 2}, v, DType::f32, Device::cuda);
  const Tensor wc = Tensor::full({8, 1024, 1, 1}, 1.0, DType::f32, Device::cuda);
  auto first = [](const Tensor& t) { return t.to_double()[0]; };
  {
    test::PrecisionScope fp32(Precision::fp32);
    CHECK(first(linear(x, w, Tensor())) == doctest::Approx(1024.25).epsilon(1e-6));
    CHECK(first(conv2d(xc, wc, Tensor(), {1, 0, 1})) == doctest::Approx(1024.25).epsilon(1e-6));
  }
  test::PrecisionScope tf32(Precision::tf32);
  CHECK(first(linear(x, w, Tensor())) == doctest::Approx(1024.0).epsilon(1e-6));
  CHECK(first(conv2d(xc, wc, Tensor(), {1, 0, 1})) == doctest::Approx(1024.0).epsilon(1e-6));
}

namespace {

// fit() on the GPU with or without the step graph: 2 epochs of 72 samples in batches of 16 (four
// full steps and a shorter last one per epoch), lr per step, so the graph is captured in epoch 1
// and replayed across the epoch boundary, beside the shorter batch that runs eagerly.
struct FitResult {
  std::vector<double> parameters, buffers, losses, accuracies;
};

FitResult fit_on(const std::string& name, Device device, bool cuda_graph) {
  const DeviceDataset data = to_device(make_synthetic(72, 10, 3), device);
  ModelConfig mc;
  mc.seed = 11;
  auto model = make_model(name, mc);
  TrainConfig c = step_config();
  c.epochs = 2;
  c.lr = 0.05;
  c.per_step = true;
  c.cuda_graph = cuda_graph;
  Trainer t(*model, data, nullptr, c);
  FitResult r;
  for (const EpochStats& s : t.fit()) r.losses.push_back(s.train_loss), r.accuracies.push_back(s.train_acc);
  r.parameters = t.parameters().values.to_double();
  r.buffers = buffers_of(*model);
  return r;
}

}  // namespace

TEST_CASE("the CUDA step replayed from a graph ends with the eager step's weights, bit for bit") {
  // Both run the same kernels on the same device buffers; only the launches differ. vgg16_bn and
  // mobilenet_v2 have dropout: a replay that reused the captured step's mask would differ here.
  for (const char* name : {"resnet20", "mobilenet_v2", "vgg16_bn"}) {
    CAPTURE(name);
    const FitResult eager = fit_on(name, Device::cuda, false), graph = fit_on(name, Device::cuda, true);
    CHECK(graph.losses == eager.losses);
    CHECK(graph.accuracies == eager.accuracies);
    CHECK(graph.parameters == eager.parameters);
    CHECK(graph.buffers == eager.buffers);
  }
}

TEST_CASE("parity: two epochs of the sync-free CUDA step match the CPU's epochs") {
  // The device-side staging (order, labels, Philox counters, per-step lr, the shorter last batch)
  // against the CPU's host-side loop. Ten steps at lr 0.05 carry the per-op fp32 differences
  // into the weights: tolerances of about ten steps of the three-step test's.
  for (const char* name : {"resnet20", "mobilenet_v2"}) {
    CAPTURE(name);
    const FitResult cpu = fit_on(name, Device::cpu, false), gpu = fit_on(name, Device::cuda, true);
    test::expect_close(gpu.losses, cpu.losses, test::kGrad, std::string(name) + " epoch losses");
    // A near-tie of two logits may flip one prediction between the devices, no more.
    for (size_t e = 0; e < cpu.accuracies.size(); ++e) CHECK(std::fabs(gpu.accuracies[e] - cpu.accuracies[e]) <= 1.5 / 72);
    test::expect_close(gpu.parameters, cpu.parameters, {1e-4, 1e-3}, std::string(name) + " weights after 2 epochs");
    test::expect_close(gpu.buffers, cpu.buffers, {1e-4, 1e-3}, std::string(name) + " BN running statistics");
  }
}

TEST_CASE("a non-finite loss on the GPU stops the run before its update reaches the weights") {
  // One NaN loss weight makes the loss of the step holding that sample NaN, and its gradients
  // NaN everywhere: an update from it would leave NaN weights. The halt flag is read after later
  // steps have run (eagerly or replayed), and the run must fail with finite weights.
  const DeviceDataset data = to_device(make_synthetic(64, 10, 3), Device::cuda);
  ModelConfig mc;
  mc.seed = 11;
  for (bool graph : {false, true}) {
    CAPTURE(graph);
    auto model = make_model("resnet20", mc);
    TrainConfig c = step_config();
    c.epochs = 1;
    c.cuda_graph = graph;
    Trainer t(*model, data, nullptr, c);
    std::vector<float> w(64, 1.0f);
    w[37] = NAN;
    t.set_sample_weights(w);
    CHECK_THROWS_WITH_AS(t.fit(), doctest::Contains("training diverged: loss is"), Error);  // nan or -nan
    for (double v : t.parameters().values.to_double()) REQUIRE(std::isfinite(v));
  }
}
