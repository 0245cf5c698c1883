// sieve: the command line. Every failure is one line "sieve: <what and why>" and exit code 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "apps/bench_command.h"
#include "apps/defend_command.h"
#include "apps/poison_command.h"
#include "apps/study_command.h"
#include "apps/train_command.h"
#include "engine/error.h"
#include "models/model.h"

namespace {

namespace fs = std::filesystem;

// Whether the tree under dir holds no file at all (only empty folders).
bool holds_no_file(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (!it->is_directory(ec)) return false;
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sieve: a deep-learning engine for backdoor-poisoning research"};
  app.require_subcommand(1);
  // A bad flag is one line like any other failure: "sieve: --epochs: Value 0 not in range ...".
  app.failure_message([](const CLI::App*, const CLI::Error& e) { return std::string("sieve: ") + e.what() + "\n"; });
  sieve::TrainOptions train;
  CLI::App* train_cmd = sieve::add_train_command(app, train);
  sieve::DefendOptions defend;
  CLI::App* defend_cmd = sieve::add_defend_command(app, defend);
  sieve::PoisonOptions poison;
  CLI::App* poison_cmd = sieve::add_poison_command(app, poison);
  sieve::StudyOptions study;
  CLI::App* study_cmd = sieve::add_study_command(app, study);
  sieve::BenchOptions bench;
  CLI::App* bench_cmd = sieve::add_bench_command(app, bench);
  CLI::App* models_cmd = app.add_subcommand("models", "list the models with their parameter counts");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The output folder of the command that runs, if it is new: a failure that leaves it without a
  // single file (bad flags or data found after it was made) removes it again, so a failed run
  // leaves nothing behind. A folder that held a run before is never touched.
  std::string out;
  if (*train_cmd) out = train.out;
  if (*defend_cmd) out = defend.out;
  if (*study_cmd) out = study.out;
  if (*bench_cmd) out = bench.out;
  std::error_code ec;
  const bool out_is_new = !out.empty() && !fs::exists(out, ec);
  try {
    if (*train_cmd) sieve::run_train(train, train_cmd);
    if (*defend_cmd) sieve::run_defend(defend, defend_cmd);
    if (*poison_cmd) sieve::run_poison(poison);
    if (*study_cmd) sieve::run_study(study);
    if (*bench_cmd) sieve::run_bench(bench);
    if (*models_cmd) {
      std::printf("%-14s %12s %12s %8s\n", "model", "params(10)", "params(100)", "features");
      for (const std::string& name : sieve::model_names()) {
        sieve::ModelConfig c10, c100;
        c100.num_classes = 100;
        auto m10 = sieve::make_model(name, c10);
        std::printf("%-14s %12ld %12ld %8ld\n", name.c_str(), long(m10->parameter_count()),
                    long(sieve::make_model(name, c100)->parameter_count()), long(m10->feature_dim()));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sieve: %s\n", e.what());
    if (out_is_new && fs::is_directory(out, ec) && holds_no_file(out)) fs::remove_all(out, ec);
    return 1;
  }
  return 0;
}
