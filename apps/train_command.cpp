#include "apps/train_command.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/device_flags.h"
#include "studies/plot.h"
#include "studies/run_info.h"
#include "engine/device.h"
#include "engine/io.h"
#include "engine/safetensors.h"

namespace sieve {

namespace fs = std::filesystem;

namespace {

bool given(const CLI::App* app, const char* flag) { return app && app->count(flag) > 0; }

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainOptions& o) {
  CLI::App* c = app.add_subcommand("train", "train a model on a dataset (writes metrics, plot, weights)");
  c->add_option("--model", o.model, "resnet18 | resnet20 | vgg16_bn | mobilenet_v2")->capture_default_str();
  c->add_option("--dataset", o.dataset, "cifar10 | cifar100 | fashion_mnist | fashion_mnist_28 | image_folder | synthetic | shapes")
      ->capture_default_str();
  c->add_option("--data", o.data, "dataset folder in its official format (see README)");
  c->add_option("--epochs", o.train.epochs, "training epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--batch-size", o.train.batch_size, "batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  c->add_option("--lr", o.train.lr, "base learning rate")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  c->add_option("--momentum", o.train.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--wd", o.train.weight_decay, "weight decay (coupled, PyTorch SGD)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_flag("--nesterov", o.train.nesterov, "Nesterov momentum");
  c->add_option("--schedule", o.train.schedule, "constant | cosine | multistep | warmup_cosine")
      ->check(CLI::IsMember({"constant", "cosine", "multistep", "warmup_cosine"}))->capture_default_str();
  c->add_option("--eta-min", o.train.eta_min, "cosine floor")->check(CLI::Range(0.0, 100.0));
  c->add_option("--t-max", o.train.t_max, "cosine period in epochs (default: --epochs)")->check(CLI::Range(0, 100000));
  c->add_option("--warmup", o.train.warmup_epochs, "warm-up epochs (warmup_cosine)")->check(CLI::Range(0, 100000));
  c->add_option("--milestones", o.train.milestones, "multistep epochs")->delimiter(',');
  c->add_option("--gamma", o.train.gamma, "multistep factor")->check(CLI::Range(0.0, 1.0));
  c->add_flag("--per-step", o.train.per_step, "step the schedule every optimiser step");
  c->add_flag("!--no-augment", o.train.augment, "no random crop / flip");
  c->add_option("--seed", o.train.seed, "seed of initialisation, shuffling and augmentation")->capture_default_str();
  add_device_flags(c, o.device, o.cuda_graph);
  c->add_option("--precision", o.precision,
                "fp32 | tf32 (GPU convolutions and matrix products) | bf16 (CPU convolutions on bf16, fp32 master "
                "weights)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))
      ->capture_default_str();
  c->add_option("--out", o.out, "output folder")->capture_default_str();
  c->add_flag("--resume", o.resume, "continue the run in --out from its last checkpoint");
  c->add_option("--preset", o.preset, "quick: ResNet-20 on the embedded synthetic dataset, minutes on a CPU")
      ->check(CLI::IsMember({"quick"}));
  c->add_option("--train-subset", o.train_subset, "train on a seeded random subset of this many images")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_option("--test-subset", o.test_subset, "evaluate on a seeded random subset of this many images")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_flag("--resnet20-option-b", o.resnet20_option_b, "ResNet-20 shortcut B (1x1 conv + BN) instead of A");
  return c;
}

std::vector<EpochStats> run_train(TrainOptions o, const CLI::App* parsed) {
  if (o.preset == "quick") {
    if (!given(parsed, "--model")) o.model = "resnet20";
    if (!given(parsed, "--dataset")) o.dataset = "synthetic";
    if (!given(parsed, "--epochs")) o.train.epochs = 4;
    if (!given(parsed, "--batch-size")) o.train.batch_size = 64;
    if (!given(parsed, "--lr")) o.train.lr = 0.05;
  }
  SIEVE_CHECK(is_generated(o.dataset) || !o.data.empty(), "--data: the folder of ", o.dataset,
              " is needed (see README, 'Real datasets')");
  const Device device = parse_device(o.device);
  o.train.cuda_graph = cuda_graph_on(o.cuda_graph);
  SIEVE_CHECK(o.precision != "bf16" || device == Device::cpu,
              "--precision bf16: implemented on the CPU (oneDNN) only; use fp32 or tf32 on the GPU");
  set_precision(parse_precision(o.precision));

  const fs::path out(o.out);
  const fs::path checkpoint = out / "checkpoint.safetensors";
  SIEVE_CHECK(o.resume || !fs::exists(checkpoint), "--out ", o.out,
              " already holds a run (checkpoint.safetensors): pass --resume to continue it, or choose another --out");

  ImageDataset train = load_dataset(o.dataset, o.data, true);
  ImageDataset test = load_dataset(o.dataset, o.data, false);
  test.mean = train.mean, test.std = train.std;  // normalise test data with the training statistics
  train = random_subset(train, o.train_subset, o.train.seed ^ 0x7472u);
  test = random_subset(test, o.test_subset, o.train.seed ^ 0x7465u);
  fs::create_directories(out);  // only once the data has loaded: bad input leaves nothing behind

  ModelConfig mc;
  mc.num_classes = train.num_classes;
  mc.in_channels = train.channels;
  mc.seed = o.train.seed;
  mc.resnet20_option_a = !o.resnet20_option_b;
  auto model = make_model(o.model, mc);

  nlohmann::json config = {
      {"command", "train"}, {"model", o.model}, {"dataset", o.dataset}, {"data", o.data},
      {"train_size", train.size()}, {"test_size", test.size()}, {"parameters", model->parameter_count()},
      {"epochs", o.train.epochs}, {"batch_size", o.train.batch_size}, {"lr", o.train.lr},
      {"momentum", o.train.momentum}, {"weight_decay", o.train.weight_decay}, {"nesterov", o.train.nesterov},
      {"schedule", o.train.schedule}, {"t_max", o.train.t_max}, {"eta_min", o.train.eta_min},
      {"warmup_epochs", o.train.warmup_epochs}, {"milestones", o.train.milestones}, {"gamma", o.train.gamma},
      {"per_step", o.train.per_step}, {"augment", o.train.augment}, {"seed", o.train.seed},
      {"precision", o.precision}, {"preset", o.preset}, {"resnet20_shortcut", o.resnet20_option_b ? "B" : "A"},
      {"run", run_info(device_name(device))}};
  if (!o.resume || !fs::exists(out / "config.json")) write_file_atomic((out / "config.json").string(), config.dump(2) + "\n");

  std::fprintf(stderr, "sieve train: %s on %s (%ld train / %ld test images, %ld parameters) on %s\n", o.model.c_str(),
               o.dataset.c_str(), long(train.size()), long(test.size()), long(model->parameter_count()),
               device == Device::cuda ? cuda_device_description().c_str() : "cpu");
  const DeviceDataset dtrain = to_device(train, device), dtest = to_device(test, device);
  TrainConfig tc = o.train;
  tc.checkpoint = checkpoint.string();
  Trainer trainer(*model, dtrain, &dtest, tc);
  const std::vector<EpochStats> history = trainer.fit();

  write_history(out.string(), history, o.model + " on " + o.dataset);
  save_safetensors((out / "model.safetensors").string(), model->state_dict(),
                   {{"model", o.model}, {"dataset", o.dataset}, {"commit", git_commit()}});
  std::fprintf(stderr, "sieve train: final test accuracy %.4f; wrote %s/{config.json,metrics.csv,metrics.json,curves.png,model.safetensors}\n",
               history.back().test_acc, o.out.c_str());
  return history;
}

}  // namespace sieve
