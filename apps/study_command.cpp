#include "apps/study_command.h"

#include "apps/device_flags.h"
#include "engine/device.h"

namespace sieve {

namespace {

// Fills the preset's values into the settings left at 0 (or empty); run_coreset_study checks the
// rest before anything is loaded or trained.
void resolve(StudyOptions& o) {
  SIEVE_CHECK(o.preset == "paper" || o.preset == "quick", "--preset: unknown preset '", o.preset,
              "' (known: paper, quick)");
  const bool quick = o.preset == "quick";
  auto preset = [&](int64_t& v, const char* flag, int64_t paper, int64_t small) {
    SIEVE_CHECK(v >= 0, flag, " must be >= 1, got ", v);
    if (v == 0) v = quick ? small : paper;
  };
  preset(o.replicates, "--replicates", 3, 1);
  preset(o.imp_rounds, "--imp-rounds", 2, 1);
  preset(o.epochs, "--epochs", 50, 2);
  preset(o.score_epochs, "--score-epochs", 20, 2);
  preset(o.craig_epochs, "--craig-epochs", 10, 2);
  preset(o.imp_epochs, "--imp-epochs", 10, 1);
  if (o.model.empty()) o.model = quick ? "resnet20" : "resnet18";
  SIEVE_CHECK(quick || !o.data.empty(), "--data: the cifar-10-batches-bin folder is needed (or --preset quick)");
}

}  // namespace

CLI::App* add_study_command(CLI::App& app, StudyOptions& o) {
  CLI::App* c = app.add_subcommand("study", "the coreset + IMP backdoor study (study 1)");
  c->add_option("--methods", o.methods, "comma list of full, random, el2n, forgetting, craig")->capture_default_str();
  c->add_option("--replicates", o.replicates, "replicates (default: 3 paper, 1 quick)")->check(CLI::Range(1, 1000));
  c->add_option("--replicate", o.replicate, "run only this replicate (0-based), e.g. one process per cell")
      ->check(CLI::Range(0, 999));
  c->add_option_function<uint64_t>("--seed", [&o](const uint64_t& v) { o.seed = v; },
                                   "replicate r uses seed + r (default: the study's published seeds)");
  c->add_option("--protocol", o.protocol, "seed (as the study coded it) | reference (as the method papers)")
      ->check(CLI::IsMember({"seed", "reference"}))->capture_default_str();
  c->add_option("--imp-rounds", o.imp_rounds, "IMP rounds (default: 2 paper, 1 quick)")->check(CLI::Range(1, 100));
  c->add_option("--preset", o.preset, "paper (CIFAR-10 from --data) | quick (synthetic data, minutes on a CPU)")
      ->check(CLI::IsMember({"paper", "quick"}))->capture_default_str();
  c->add_option("--model", o.model, "default: resnet18 paper, resnet20 quick");
  c->add_option("--data", o.data, "the cifar-10-batches-bin folder (paper preset)");
  c->add_option("--train-subset", o.train_subset, "seeded random subset of the training set (reduced runs)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_option("--test-subset", o.test_subset, "seeded random subset of the test set")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  c->add_option("--epochs", o.epochs, "training epochs on each selection (default: 50 paper, 2 quick)")
      ->check(CLI::Range(1, 100000));
  c->add_option("--score-epochs", o.score_epochs, "EL2N / forgetting scoring epochs (default: 20 paper, 2 quick)")
      ->check(CLI::Range(1, 100000));
  c->add_option("--craig-epochs", o.craig_epochs, "CRAIG pre-training epochs (default: 10 paper, 2 quick)")
      ->check(CLI::Range(1, 100000));
  c->add_option("--imp-epochs", o.imp_epochs, "epochs of each IMP round (default: 10 paper, 1 quick)")
      ->check(CLI::Range(1, 100000));
  c->add_flag("--selection-only", o.selection_only, "selections and poison retention only, no training");
  add_device_flags(c, o.device, o.cuda_graph);
  c->add_option("--precision", o.precision, "fp32 | tf32")->check(CLI::IsMember({"fp32", "tf32"}))
      ->capture_default_str();
  c->add_option("--out", o.out, "output folder (re-running continues a killed study)")->capture_default_str();
  c->add_option("--merge", o.merge, "out folders of earlier runs: one report of all their cells in --out")
      ->expected(1, -1)->check(CLI::ExistingDirectory);
  c->add_option("--reference", o.reference, "published aggregate (CSV) to print beside sieve's numbers");
  return c;
}

std::vector<StudyRow> run_study(StudyOptions o) {
  if (o.reference.empty())
    o.reference = SIEVE_SOURCE_DIR "/../shared/reference/coreset_study_backdoor_aggregated_results.csv";
  if (!o.merge.empty()) {
    const StudyResult merged = merge_study_cells(o.merge);
    write_study_reports(o.out, merged.rows, o.reference, merged.config);
    std::fprintf(stderr, "sieve study: merged %zu cells of %zu folders into %s\n", merged.rows.size(), o.merge.size(),
                 o.out.c_str());
    return merged.rows;
  }
  resolve(o);
  set_precision(parse_precision(o.precision));
  StudyConfig c;
  c.methods = chosen_methods(o.methods);
  c.seeds = study_seeds(o.seed, o.replicates);
  c.replicate = o.replicate, c.protocol = o.protocol, c.model = o.model;
  c.dataset = o.preset == "quick" ? "synthetic" : "cifar10";
  c.data = o.data, c.train_subset = o.train_subset, c.test_subset = o.test_subset;
  c.epochs = o.epochs, c.score_epochs = o.score_epochs, c.craig_epochs = o.craig_epochs;
  c.imp_epochs = o.imp_epochs, c.imp_rounds = o.imp_rounds, c.selection_only = o.selection_only;
  c.cuda_graph = cuda_graph_on(o.cuda_graph);
  c.device = parse_device(o.device), c.out = o.out, c.preset = o.preset, c.precision = o.precision;
  const StudyResult result = run_coreset_study(c);
  write_study_reports(o.out, result.rows, o.reference, result.config);
  std::fprintf(stderr, "sieve study: %zu cells; wrote %s/{backdoor_all_replicates,backdoor_aggregated_results,"
               "backdoor_aggregated_loss_history}.csv, results.md, plots\n", result.rows.size(), o.out.c_str());
  return result.rows;
}

}  // namespace sieve
