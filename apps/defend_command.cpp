#include "apps/defend_command.h"

#include <filesystem>

#include "apps/device_flags.h"
#include "studies/run_info.h"

namespace sieve {

namespace fs = std::filesystem;

namespace {

bool given(const CLI::App* app, const char* flag) { return app && app->count(flag) > 0; }

}  // namespace

CLI::App* add_defend_command(CLI::App& app, DefendOptions& o) {
  CLI::App* c = app.add_subcommand("defend", "the poisoned-sample-scoring defense benchmark (study 2)");
  std::vector<std::string> setting_names{"all"};
  for (const DefenseSetting& s : published_defense_settings()) setting_names.push_back(s.name);
  c->add_option("--setting", o.setting, "a published setting or all (else the custom flags)")
      ->check(CLI::IsMember(setting_names));
  c->add_option("--model", o.model, "custom setting: model")->capture_default_str();
  c->add_option("--dataset", o.dataset, "custom setting: dataset")->capture_default_str();
  c->add_option("--trigger", o.trigger,
                "custom setting: badnets | red_square | blend | blend:<image> | patch:ROW,COL,SIZE,RRGGBB|checker")
      ->capture_default_str();
  c->add_option("--alpha", o.alpha, "blend alpha")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--poison-fraction", o.poison_fraction, "custom setting: fraction of the training set poisoned")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--target", o.target, "target class")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_flag("--poison-all-classes", o.all_classes, "draw poisons from every class, the target too");
  c->add_option("--data", o.data, "dataset folder (one setting)");
  c->add_option("--data-root", o.data_root,
                "folder holding cifar-10-batches-bin/, cifar-100-binary/, fashion-mnist/ (--setting all)");
  c->add_option("--defenses", o.defenses, "comma list, all, or none (the victim and its feature dump only)")
      ->capture_default_str();
  c->add_option("--assumed-fraction", o.assumed_fraction,
                "poison fraction the defenses are told and the budget uses (default: the true one; e.g. 0.05 on "
                "clean data)")
      ->check(CLI::Range(0.0, 1.0));
  c->add_option("--removal-factor", o.removal_factor, "remove round(factor * fraction * N): 1.0 published, 1.5 later")
      ->check(CLI::Range(0.0, 20.0))->capture_default_str();
  c->add_option("--seed", o.seed, "seed of poisoning, initialisation, shuffling")->capture_default_str();
  c->add_option("--preset", o.preset, "paper (100 + 100 epochs) | quick (the embedded shapes dataset, minutes on a CPU)")
      ->check(CLI::IsMember({"paper", "quick"}))->capture_default_str();
  c->add_option("--epochs", o.epochs, "victim epochs")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--retrain-epochs", o.retrain_epochs, "epochs of each retrain (default: --epochs)")
      ->check(CLI::Range(1, 100000));
  c->add_option("--batch-size", o.batch_size, "batch size")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  c->add_option("--lr", o.lr, "base learning rate (cosine)")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  c->add_option("--train-subset", o.train_subset, "seeded random subset of the training set (reduced runs)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_option("--test-subset", o.test_subset, "seeded random subset of the test set")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_flag("!--no-augment", o.augment, "train without random crop / flip (a deviation from the protocol)");
  add_device_flags(c, o.device, o.cuda_graph);
  c->add_option("--precision", o.precision,
                "fp32 | tf32 (GPU) | bf16 (CPU convolutions on bf16, fp32 master weights; the quick preset's "
                "default on the CPU)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  c->add_option("--out", o.out, "output folder (re-running continues a killed benchmark)")->capture_default_str();
  c->add_option("--scores", o.scores,
                "suspicion scores computed outside sieve (.npy or .safetensors, one per training sample): "
                "evaluated as defense external:<file stem>, beside the built-in ones; with --offline, one per dump")
      ->expected(1, -1);
  c->add_option("--offline", o.offline, "features.safetensors of earlier runs: detection quality only")
      ->expected(1, -1)
      ->check(CLI::ExistingFile);
  c->add_option("--reference", o.reference, "published table (CSV) to print beside sieve's numbers");
  return c;
}

std::vector<DefenseRow> run_defend(DefendOptions o, const CLI::App* parsed) {
  if (!o.offline.empty())
    return score_feature_dumps(
        {o.offline, o.scores, chosen_defenses(o.defenses), o.removal_factor, o.assumed_fraction, o.out});
  if (o.reference.empty()) o.reference = SIEVE_SOURCE_DIR "/../shared/reference/defense_benchmark.csv";
  std::vector<DefenseSetting> settings;
  if (o.preset == "quick") {
    if (!given(parsed, "--epochs")) o.epochs = 8;
    if (!given(parsed, "--batch-size")) o.batch_size = 64;
    if (!given(parsed, "--lr")) o.lr = 0.05;
    // The embedded shapes dataset (3000 training images; a ResNet-20 reaches about 0.86 in 8
    // epochs) with study 1's 7x7 red square: learned within those epochs, while BadNets' 3x3
    // corner patch, mostly cropped away by the augmentation, is not learned at this scale.
    settings.push_back({"quick-resnet20-shapes-red_square", "resnet20", "shapes", "red_square", "", 0.05});
  } else if (o.setting == "all") {
    settings = published_defense_settings();
  } else if (!o.setting.empty()) {
    for (const DefenseSetting& s : published_defense_settings())
      if (s.name == o.setting) settings.push_back(s);
  } else {
    const std::string trig = o.trigger.substr(0, o.trigger.find(':'));
    settings.push_back({o.model + "-" + o.dataset + "-" + trig, o.model, o.dataset, o.trigger, "", o.poison_fraction});
  }
  const Device device = parse_device(o.device);
  // The quick preset trains in bf16 on the CPU (accuracy parity with fp32:
  // results/cpu-bf16-parity-resnet20-cifar10), fp32 elsewhere.
  if (o.precision.empty()) o.precision = o.preset == "quick" && device == Device::cpu ? "bf16" : "fp32";
  SIEVE_CHECK(o.precision != "bf16" || device == Device::cpu,
              "--precision bf16: implemented on the CPU (oneDNN) only; use fp32 or tf32 on the GPU");
  struct RestorePrecision {  // the setting is global: a caller (a test) gets its own back
    Precision previous = precision();
    ~RestorePrecision() { set_precision(previous); }
  } restore;
  set_precision(parse_precision(o.precision));
  const std::vector<std::string> defenses = chosen_defenses(o.defenses);  // fail on a bad list before any training
  SIEVE_CHECK(o.scores.empty() || settings.size() == 1, "--scores: the scores of one training set need exactly one "
              "setting, not ", settings.size());

  std::vector<DefenseRow> rows;
  for (const DefenseSetting& st : settings) {
    DefenseBenchmarkConfig c;
    c.setting = st;
    c.data = !o.data_root.empty() && !st.folder.empty() ? (fs::path(o.data_root) / st.folder).string() : o.data;
    c.alpha = o.alpha, c.target = o.target, c.all_classes = o.all_classes;
    c.defenses = defenses, c.scores = o.scores;
    c.removal_factor = o.removal_factor, c.assumed_fraction = o.assumed_fraction;
    c.seed = o.seed, c.epochs = o.epochs, c.retrain_epochs = o.retrain_epochs, c.batch_size = o.batch_size;
    c.lr = o.lr, c.train_subset = o.train_subset, c.test_subset = o.test_subset, c.augment = o.augment;
    c.device = device, c.out = o.out, c.cuda_graph = cuda_graph_on(o.cuda_graph), c.precision = o.precision;
    for (DefenseRow& r : run_defense_benchmark(c)) rows.push_back(std::move(r));
  }
  write_defense_reports(o.out, rows, load_published_defense_rows(o.reference), run_info(device_name(device)));
  std::fprintf(stderr, "\n");
  print_defense_rows(rows);
  std::fprintf(stderr, "sieve defend: wrote %s/results.{csv,json,md}\n", o.out.c_str());
  return rows;
}

}  // namespace sieve
