// The training loop: it learns the synthetic dataset, a run killed after an epoch and resumed
// ends exactly where an uninterrupted run ends, subsets and weights apply, a NaN loss stops it
// with a clear error, and the train command rejects bad flags.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "apps/train_command.h"
#include "tests/common/check.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

struct Run {
  std::vector<EpochStats> history;
  std::vector<double> weights;
};

TrainConfig tiny_config(const std::string& checkpoint) {
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 16;
  c.lr = 0.05;
  c.seed = 7;
  c.checkpoint = checkpoint;
  c.progress = false;
  return c;
}

std::unique_ptr<Model> resnet20_for_4_classes() {
  ModelConfig mc;
  mc.num_classes = 4;
  return make_model("resnet20", mc);
}

// Trains ResNet-20 on 64 synthetic images; stop_after > 0 throws after that many epochs, as a kill would.
Run train_tiny(const std::string& checkpoint, int64_t stop_after, bool test_each_epoch = true) {
  const DeviceDataset train = to_device(make_synthetic(64, 4, 1), Device::cpu);
  const DeviceDataset test = to_device(make_synthetic(32, 4, 2), Device::cpu);
  auto model = resnet20_for_4_classes();
  TrainConfig cfg = tiny_config(checkpoint);
  cfg.test_each_epoch = test_each_epoch;
  Trainer t(*model, train, &test, cfg);
  t.on_epoch_end([&](int64_t epoch) {
    if (stop_after > 0 && epoch + 1 > stop_after) throw std::runtime_error("killed");
  });
  Run r;
  r.history = t.fit();
  r.weights = t.parameters().values.to_double();
  return r;
}

}  // namespace

TEST_CASE("trainer: a killed run resumes to the same final metrics and weights") {
  test::TempDir dir;
  const Run whole = train_tiny("", 0);
  const std::string ckpt = dir / "checkpoint.safetensors";
  CHECK_THROWS_WITH(train_tiny(ckpt, 1), "killed");  // dies during epoch 2: checkpoint holds epoch 1
  const Run resumed = train_tiny(ckpt, 0);
  REQUIRE(resumed.history.size() == 3);
  for (size_t e = 0; e < 3; ++e) {
    CHECK(resumed.history[e].train_loss == whole.history[e].train_loss);
    CHECK(resumed.history[e].test_acc == whole.history[e].test_acc);
    CHECK(resumed.history[e].lr == whole.history[e].lr);
  }
  CHECK(resumed.weights == whole.weights);
  CHECK(whole.history.back().train_loss < whole.history.front().train_loss);
}

TEST_CASE("trainer: testing after the last epoch only changes nothing but the earlier test columns") {
  // What the defense benchmark's retrains do: the same training, one test pass at the end.
  const Run each = train_tiny("", 0), last = train_tiny("", 0, false);
  REQUIRE(last.history.size() == 3);
  for (size_t e = 0; e < 3; ++e) CHECK(last.history[e].train_loss == each.history[e].train_loss);
  CHECK(std::isnan(last.history[0].test_acc));
  CHECK(std::isnan(last.history[1].test_loss));
  CHECK(last.history[2].test_acc == each.history[2].test_acc);
  CHECK(last.history[2].test_loss == each.history[2].test_loss);
  CHECK(last.weights == each.weights);
}

TEST_CASE("trainer: an epoch at lr 0 (the study's first warm-up epoch) still moves BN statistics and momentum") {
  // GradualWarmupScheduler over the whole run trains its first epoch at lr 0: the weights stay,
  // but every forward in train mode updates the running statistics and every step fills the
  // momentum buffer, so the next epoch starts from other statistics and velocities.
  const DeviceDataset train = to_device(make_synthetic(32, 4, 1), Device::cpu);
  auto model = resnet20_for_4_classes();
  TrainConfig c = tiny_config("");
  c.epochs = 1;
  c.schedule = "warmup_cosine";
  c.warmup_epochs = 1;
  Trainer t(*model, train, nullptr, c);
  const std::vector<double> before = t.parameters().values.to_double();
  std::vector<std::vector<double>> stats_before;
  for (const auto& [name, buffer] : model->named_buffers()) stats_before.push_back(buffer->to_double());
  const std::vector<EpochStats> h = t.fit();
  CHECK(h[0].lr == 0.0);
  CHECK(t.parameters().values.to_double() == before);
  CHECK(t.optimizer().steps() == 2);  // 32 images, batch 16
  const std::vector<double> velocity = t.optimizer().momentum_buffer().to_double();
  CHECK(std::any_of(velocity.begin(), velocity.end(), [](double v) { return v != 0.0; }));
  size_t moved = 0, k = 0;
  for (const auto& [name, buffer] : model->named_buffers()) moved += buffer->to_double() != stats_before[k++];
  CHECK(moved == stats_before.size());  // every running mean, variance and batch counter
}

TEST_CASE("trainer: subsets, sample weights and a NaN loss") {
  const DeviceDataset train = to_device(make_synthetic(32, 4, 1), Device::cpu);
  auto model = resnet20_for_4_classes();
  TrainConfig c = tiny_config("");
  c.epochs = 1;
  Trainer t(*model, train, nullptr, c);
  CHECK_THROWS_WITH_AS(t.set_subset({0, 40}), doctest::Contains("subset index 40 outside a dataset of 32"), Error);
  CHECK_THROWS_WITH_AS(t.set_sample_weights(std::vector<float>(5, 1.0f)), doctest::Contains("5 sample weights for 32"),
                       Error);
  t.set_subset({0, 1, 2, 3, 4, 5, 6, 7});
  std::vector<int64_t> seen;
  t.on_train_batch([&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    CHECK(out.logits.dim(0) == static_cast<int64_t>(idx.size()));
    seen.insert(seen.end(), idx.begin(), idx.end());
  });
  std::vector<float> w(32, 1.0f);
  w[3] = NAN;
  t.set_sample_weights(w);
  CHECK_THROWS_WITH_AS(t.fit(), doctest::Contains("training diverged: loss is nan"), Error);
  w[3] = 1.0f;
  t.set_sample_weights(w);
  seen.clear();
  const std::vector<EpochStats> h = t.fit();
  CHECK(h.size() == 1);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});  // the subset, each once per epoch
  const Trainer::Extraction e = t.extract(train);
  CHECK(e.features.shape() == Shape{32, 64});
  CHECK(e.logits.shape() == Shape{32, 4});
  CHECK(std::isfinite(h[0].train_loss));
  CHECK(h[0].images_per_s > 0);
}

TEST_CASE("train command: flags are validated with messages naming them") {
  auto parse = [](std::vector<std::string> args) {
    CLI::App app;
    TrainOptions o;
    add_train_command(app, o);
    std::reverse(args.begin(), args.end());
    app.parse(args);
  };
  CHECK_THROWS_WITH_AS(parse({"train", "--epochs", "0"}), doctest::Contains("--epochs"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"train", "--device", "tpu"}), doctest::Contains("--device"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"train", "--schedule", "linear"}), doctest::Contains("--schedule"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"train", "--lr", "-1"}), doctest::Contains("--lr"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"train", "--batch-size", "x"}), doctest::Contains("--batch-size"), CLI::ParseError);
  TrainOptions o;
  o.dataset = "cifar10";
  CHECK_THROWS_WITH_AS(run_train(o), doctest::Contains("--data: the folder of cifar10 is needed"), Error);
  o.data = "/nonexistent-sieve-folder";
  test::TempDir dir;
  o.out = dir / "run";
  CHECK_THROWS_WITH_AS(run_train(o), doctest::Contains("data_batch_1.bin: cannot open (no such file)"), Error);
}

TEST_CASE("train command: the quick preset writes every output, and --out is never overwritten silently") {
  test::TempDir dir;
  const std::string out = dir / "quick";
  CLI::App app;
  TrainOptions o;
  CLI::App* cmd = add_train_command(app, o);
  std::vector<std::string> args{"train", "--preset", "quick", "--epochs", "1", "--train-subset", "48",
                                "--test-subset", "16", "--device", "cpu", "--out", out};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  const std::vector<EpochStats> h = run_train(o, cmd);
  REQUIRE(h.size() == 1);  // --epochs given: the preset keeps it
  for (const char* f : {"config.json", "metrics.csv", "metrics.json", "curves.png", "model.safetensors",
                        "checkpoint.safetensors"})
    CHECK_MESSAGE(fs::exists(fs::path(out) / f), f);
  CHECK_THROWS_WITH_AS(run_train(o, cmd), doctest::Contains("pass --resume to continue it"), Error);
  o.resume = true;
  CHECK(run_train(o, cmd).size() == 1);  // already complete: resumes at its end
}

TEST_CASE("trainer: run_epoch is fit()'s epoch (what sieve bench times)") {
  const DeviceDataset train = to_device(make_synthetic(40, 4, 1), Device::cpu);
  TrainConfig c = tiny_config("");
  c.epochs = 2;
  auto fitted = resnet20_for_4_classes();
  Trainer a(*fitted, train, nullptr, c);
  const std::vector<EpochStats> h = a.fit();
  auto stepped = resnet20_for_4_classes();
  Trainer b(*stepped, train, nullptr, c);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const EpochStats s = b.run_epoch(epoch);
    CHECK(s.train_loss == h[epoch].train_loss);
    CHECK(s.train_acc == h[epoch].train_acc);
    CHECK(s.lr == h[epoch].lr);
  }
  CHECK(b.parameters().values.to_double() == a.parameters().values.to_double());
}

TEST_CASE("HostSyncFreeScope nests and restores; CPU copies stay allowed inside") {
  CHECK(!host_sync_free());
  {
    HostSyncFreeScope outer;
    CHECK(host_sync_free());
    {
      HostSyncFreeScope inner;
      CHECK(host_sync_free());
    }
    CHECK(host_sync_free());
    const Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}, Device::cpu);
    CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3});
  }
  CHECK(!host_sync_free());
}
