// The coreset study driver at toy scale (synthetic data, 1 epoch everywhere): every file of the
// report in the study's own CSV schemas, resuming without redoing a cell, merging the folders of
// separate runs, selection-only reports, the population std of the aggregates, and bad flags.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <sstream>

#include "apps/study_command.h"
#include "engine/io.h"
#include "tests/common/check.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

// The published files' headers, written out as the study wrote them; sieve's extra columns follow.
const std::string kAllReplicatesHeader =
    "method,replicate_idx,seed,subset_size,clean_acc,asr,poison_kept,poison_total,poison_retention,pruned_acc,"
    "pruned_asr,pruned_test_loss";
const std::string kAggregatedHeader =
    "method,clean_acc_mean,clean_acc_std,asr_mean,asr_std,poison_retention_mean,poison_retention_std,pruned_acc_mean,"
    "pruned_acc_std,pruned_asr_mean,pruned_asr_std,pruned_test_loss_mean,pruned_test_loss_std";
const std::string kLossHistoryHeader =
    "method,epoch,train_loss_mean,train_loss_std,train_acc_mean,train_acc_std,test_loss_mean,test_loss_std,"
    "test_acc_mean,test_acc_std";

// The quick preset cut down to seconds: 100 training / 50 test images, one epoch everywhere
// (EL2N's seed protocol averages epochs 2..E, so scoring takes 2).
StudyOptions toy(const std::string& out, const std::string& methods) {
  StudyOptions o;
  o.preset = "quick";
  o.methods = methods;
  o.train_subset = 100;
  o.test_subset = 50;
  o.epochs = 1;
  o.score_epochs = 2;
  o.craig_epochs = 1;
  o.imp_epochs = 1;
  o.imp_rounds = 1;
  o.device = "cpu";
  o.out = out;
  return o;
}

std::vector<std::string> lines(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("study: the whole pipeline at toy scale writes every file, and a second run redoes no cell") {
  test::TempDir dir;
  const StudyOptions o = toy(dir / "study", "full,random,el2n,forgetting,craig");
  const std::vector<StudyRow> rows = run_study(o);
  REQUIRE(rows.size() == 5);
  const std::vector<std::string> names{"full", "random", "el2n", "forget", "craig"};
  for (size_t i = 0; i < rows.size(); ++i) {
    const StudyRow& r = rows[i];
    CAPTURE(r.method);
    CHECK(r.method == names[i]);
    CHECK(r.replicate_idx == 0);
    CHECK(r.seed == 1608637542u);  // the study's first published seed
    CHECK(r.poison_total == 2);    // floor(0.02 * 100), from all classes
    CHECK(r.poison_retention == static_cast<double>(r.poison_kept) / 2.0);
    if (r.method == "full") CHECK(r.subset_size == 100);
    else if (r.method == "craig") CHECK(r.subset_size <= 50);  // floor(k * n_c / n) per class
    else CHECK(r.subset_size == 50);
    for (double v : {r.clean_acc, r.asr, r.asr_nontarget, r.pruned_acc, r.pruned_asr, r.pruned_asr_nontarget}) {
      CHECK(v >= 0.0);
      CHECK(v <= 1.0);
    }
    CHECK(std::isfinite(r.pruned_test_loss));
    CHECK(r.pruned_kept_fraction == doctest::Approx(0.7).epsilon(0.01));  // one round of 30% per layer
    REQUIRE(r.history.size() == 1);
  }
  CHECK(rows[0].poison_kept == 2);
  CHECK(rows[0].poison_retention == 1.0);

  const fs::path out = o.out;
  for (const char* f : {"backdoor_all_replicates.csv", "backdoor_aggregated_results.csv",
                        "backdoor_aggregated_loss_history.csv", "results.md", "results.png", "loss_history.png",
                        "config.json"})
    CHECK_MESSAGE(fs::exists(out / f), f);
  for (const std::string& m : names)
    for (const char* f : {"cell.json", "selection.json", "result.json", "sparsity.json", "dense/result.json",
                          "dense/checkpoint.safetensors", "dense/metrics.csv", "dense/curves.png",
                          "imp/rewind.safetensors", "imp/round-1/mask.safetensors", "imp/round-1/checkpoint.safetensors",
                          "imp/round-1/result.json", "imp/round-1/metrics.csv"})
      CHECK_MESSAGE(fs::exists(out / "cells" / (m + "-r0") / f), (m + "-r0/" + f));

  // The study's columns first, exactly; sieve's extra columns after them.
  const std::vector<std::string> all = lines((out / "backdoor_all_replicates.csv").string());
  REQUIRE(all.size() == 6);
  CHECK(all[0] == kAllReplicatesHeader + ",asr_nontarget,pruned_asr_nontarget,pruned_kept_fraction");
  CHECK(starts_with(all[1], "full,0,1608637542,100,"));
  CHECK(fields(all[1])[8] == "1.0");  // poison_retention as the study's files write it
  const std::vector<std::string> agg = lines((out / "backdoor_aggregated_results.csv").string());
  REQUIRE(agg.size() == 6);
  CHECK(starts_with(agg[0], kAggregatedHeader + ","));
  CHECK(fields(agg[1])[2] == "0.0");  // one replicate: std 0
  const std::vector<std::string> loss = lines((out / "backdoor_aggregated_loss_history.csv").string());
  REQUIRE(loss.size() == 6);
  CHECK(loss[0] == kLossHistoryHeader);
  CHECK(starts_with(loss[4], "forget,1,"));
  for (const auto& [file, header] : {std::pair<const char*, std::string>{"all_replicates", kAllReplicatesHeader},
                                     {"aggregated_results", kAggregatedHeader},
                                     {"aggregated_loss_history", kLossHistoryHeader}}) {
    const fs::path published =
        fs::path(SIEVE_SHARED_DIR) / "reference" / (std::string("coreset_study_backdoor_") + file + ".csv");
    if (!fs::exists(published)) continue;
    CHECK(lines(published.string())[0] == header);
    CHECK(starts_with(lines((out / (std::string("backdoor_") + file + ".csv")).string())[0], header));
  }
  const std::string md = read_file((out / "results.md").string());
  CHECK(md.find("| sieve | el2n | 1 |") != std::string::npos);
  if (fs::exists(fs::path(SIEVE_SHARED_DIR) / "reference/coreset_study_backdoor_aggregated_results.csv"))
    CHECK(md.find("| published | forget |") != std::string::npos);

  // A second run reads every finished cell and trains nothing.
  const fs::path el2n = out / "cells/el2n-r0";
  const auto result_time = fs::last_write_time(el2n / "result.json");
  const auto selection_time = fs::last_write_time(el2n / "selection.json");
  const auto checkpoint_time = fs::last_write_time(el2n / "imp/round-1/checkpoint.safetensors");
  const std::vector<StudyRow> again = run_study(o);
  CHECK(fs::last_write_time(el2n / "result.json") == result_time);
  CHECK(fs::last_write_time(el2n / "selection.json") == selection_time);
  CHECK(fs::last_write_time(el2n / "imp/round-1/checkpoint.safetensors") == checkpoint_time);
  REQUIRE(again.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(again[i].clean_acc == rows[i].clean_acc);
    CHECK(again[i].pruned_asr == rows[i].pruned_asr);
    CHECK(again[i].poison_kept == rows[i].poison_kept);
  }
  CHECK(lines((out / "backdoor_all_replicates.csv").string()) == all);

  StudyOptions changed = o;
  changed.epochs = 2;  // another study's folder is never reused
  CHECK_THROWS_WITH_AS(run_study(changed), doctest::Contains("this folder holds a study with epochs = 1, not 2"), Error);
}

TEST_CASE("study: --merge of two out folders equals a single run") {
  test::TempDir dir;
  StudyOptions a = toy(dir / "a", "full"), b = toy(dir / "b", "random"), both = toy(dir / "both", "random,full");
  run_study(a);
  run_study(b);
  const std::vector<StudyRow> single = run_study(both);
  StudyOptions merge;
  merge.merge = {a.out, b.out};
  merge.out = dir / "merged";
  const std::vector<StudyRow> merged = run_study(merge);
  REQUIRE(merged.size() == 2);
  CHECK(merged[0].method == "full");
  CHECK(merged[1].method == "random");
  for (const char* f : {"backdoor_all_replicates.csv", "backdoor_aggregated_results.csv",
                        "backdoor_aggregated_loss_history.csv"})
    CHECK_MESSAGE(lines((fs::path(dir / "merged") / f).string()) == lines((fs::path(dir / "both") / f).string()), f);
  CHECK(fs::exists(dir / "merged/results.md"));

  merge.merge = {a.out, both.out};
  CHECK_THROWS_WITH_AS(run_study(merge), doctest::Contains("--merge: cell full-r0 is in more than one folder"), Error);
  merge.merge = {a.out, dir / "nothing"};
  fs::create_directories(dir / "nothing");
  const std::string no_cells = "--merge: " + dir / "nothing" + " holds no study cells";
  CHECK_THROWS_WITH_AS(run_study(merge), doctest::Contains(no_cells.c_str()), Error);
  StudyOptions other = toy(dir / "other", "random");
  other.epochs = 2;
  other.selection_only = true;
  run_study(other);
  merge.merge = {a.out, other.out};
  CHECK_THROWS_WITH_AS(run_study(merge), doctest::Contains("belongs to a study with epochs = 2, not 1"), Error);
}

TEST_CASE("study: the reference protocol trains on CRAIG's weights and prunes 20% globally from the dense run") {
  test::TempDir dir;
  StudyOptions o = toy(dir / "ref", "craig");
  o.protocol = "reference";
  const std::vector<StudyRow> rows = run_study(o);
  REQUIRE(rows.size() == 1);
  CHECK(std::isfinite(rows[0].pruned_acc));
  const fs::path cell = fs::path(o.out) / "cells/craig-r0";
  const nlohmann::json sel = nlohmann::json::parse(read_file((cell / "selection.json").string()));
  const std::vector<float> w = sel.at("weights").get<std::vector<float>>();
  REQUIRE(w.size() == sel.at("indices").size());
  double sum = 0;
  for (float x : w) {
    CHECK(x >= 1.0f);  // cluster sizes
    sum += x;
  }
  CHECK(sum <= 100.0);  // each class with a budget sums to its size
  const nlohmann::json sp = nlohmann::json::parse(read_file((cell / "sparsity.json").string()));
  CHECK(sp.at("scope") == "global");
  CHECK(sp.at("fraction_per_round") == 0.2);
  CHECK(sp.at("rounds")[0].at("sparsity").at("kept_fraction").get<double>() == doctest::Approx(0.8).epsilon(1e-3));
  CHECK(rows[0].pruned_kept_fraction == doctest::Approx(0.8).epsilon(1e-3));
}

TEST_CASE("study: --selection-only reports every method's poison retention without training") {
  test::TempDir dir;
  StudyOptions o = toy(dir / "sel", "full,random,el2n,forgetting,craig");
  o.selection_only = true;
  o.seed = 7;
  const std::vector<StudyRow> rows = run_study(o);
  REQUIRE(rows.size() == 5);
  for (const StudyRow& r : rows) {
    CAPTURE(r.method);
    CHECK(r.seed == 7);
    CHECK(r.poison_total == 2);
    CHECK(r.poison_retention >= 0.0);
    CHECK(r.poison_retention <= 1.0);
    CHECK(std::isnan(r.clean_acc));
    CHECK(std::isnan(r.pruned_asr));
    CHECK(r.history.empty());
    CHECK(!fs::exists(fs::path(o.out) / "cells" / (r.method + "-r0") / "dense"));
  }
  const std::vector<std::string> all = lines(dir / "sel/backdoor_all_replicates.csv");
  REQUIRE(all.size() == 6);
  const std::vector<std::string> f = fields(all[2]);
  REQUIRE(f.size() == 15);
  CHECK(f[0] == "random");
  CHECK(f[3] == "50");
  CHECK(f[4].empty());  // clean_acc: not trained
  CHECK(!f[8].empty());  // poison_retention
  CHECK(lines(dir / "sel/backdoor_aggregated_loss_history.csv").size() == 1);
  CHECK(read_file(dir / "sel/results.md").find("| sieve | craig | 1 |") != std::string::npos);
}

TEST_CASE("study: aggregates are the mean and the population std (ddof = 0) over replicates") {
  test::TempDir dir;
  std::vector<StudyRow> rows(2);
  for (int i = 0; i < 2; ++i) {
    StudyRow& r = rows[i];
    r.method = "el2n", r.replicate_idx = i, r.seed = 10 + i;
    r.subset_size = 100, r.poison_kept = 3 + i, r.poison_total = 4;
    r.poison_retention = (3.0 + i) / 4.0;  // 0.75, 1.0
    r.clean_acc = i ? 0.75 : 0.5;
    r.asr = 0.25;
    r.pruned_acc = i ? 0.5 : 0.25;
    r.pruned_asr = 1.0;
    r.pruned_test_loss = i ? 3.0 : 1.0;
    r.history = {{1, 0.1, i ? 2.0 : 1.0, 0.5, 1.5, 0.25, 1, 1}};
  }
  write_study_reports(dir / "r", rows, "", {{"command", "study"}});
  const std::vector<std::string> agg = lines(dir / "r/backdoor_aggregated_results.csv");
  REQUIRE(agg.size() == 2);
  // clean_acc 0.5, 0.75: mean 0.625, std 0.125 (ddof = 1 would give 0.1768).
  CHECK(starts_with(agg[1], "el2n,0.625,0.125,0.25,0.0,0.875,0.125,0.375,0.125,1.0,0.0,2.0,1.0,"));
  CHECK(fields(agg[1]).back() == "2");  // replicates
  const std::vector<std::string> loss = lines(dir / "r/backdoor_aggregated_loss_history.csv");
  REQUIRE(loss.size() == 2);
  CHECK(loss[1] == "el2n,1,1.5,0.5,0.5,0.0,1.5,0.0,0.25,0.0");
  const std::vector<std::string> all = lines(dir / "r/backdoor_all_replicates.csv");
  REQUIRE(all.size() == 3);
  CHECK(starts_with(all[1], "el2n,0,10,100,0.5,0.25,3,4,0.75,0.25,1.0,1.0,"));
  CHECK(fs::exists(dir / "r/results.png"));
  CHECK(read_file(dir / "r/results.md").find("0.6250 ± 0.1250") != std::string::npos);
}

TEST_CASE("study: bad flags are rejected with the flag's name before any training") {
  test::TempDir dir;
  auto rejects = [&](const std::function<void(StudyOptions&)>& edit, const std::string& message) {
    StudyOptions o = toy(dir / "bad", "full");
    edit(o);
    CHECK_THROWS_WITH_AS(run_study(o), doctest::Contains(message.c_str()), Error);
  };
  rejects([](StudyOptions& o) { o.methods = "full,magic"; }, "--methods: unknown method 'magic'");
  rejects([](StudyOptions& o) { o.methods = ","; }, "--methods: empty list");
  rejects([](StudyOptions& o) { o.replicates = 4; }, "--replicates: the study published 3 seeds");
  rejects([](StudyOptions& o) { o.replicate = 1; }, "--replicate 1 is not one of 0..0");
  rejects([](StudyOptions& o) { o.preset = "huge"; }, "--preset: unknown preset 'huge'");
  rejects([](StudyOptions& o) { o.protocol = "paper"; }, "--protocol: unknown protocol 'paper'");
  rejects([](StudyOptions& o) { o.model = "resnet99"; }, "--model: unknown model 'resnet99'");
  rejects([](StudyOptions& o) { o.epochs = -1; }, "--epochs must be >= 1, got -1");
  rejects([](StudyOptions& o) { o.imp_rounds = -2; }, "--imp-rounds must be >= 1, got -2");
  rejects([](StudyOptions& o) { o.methods = "el2n", o.score_epochs = 1; }, "--score-epochs: the seed protocol's EL2N");
  rejects([](StudyOptions& o) { o.train_subset = -5; }, "--train-subset must be >= 0");
  rejects([](StudyOptions& o) { o.preset = "paper", o.data.clear(); }, "--data: the cifar-10-batches-bin folder");
  rejects([](StudyOptions& o) { o.device = "tpu"; }, "--device: 'tpu'");
  rejects([](StudyOptions& o) { o.precision = "fp8"; }, "--precision: 'fp8'");
  rejects([](StudyOptions& o) { o.train_subset = 1; }, "--train-subset: 1 training images leave an empty half");
  CHECK(!fs::exists(dir / "bad/cells"));

  // The command line checks ranges and names the flag too.
  CLI::App app;
  StudyOptions parsed;
  add_study_command(app, parsed);
  CHECK_THROWS_AS(app.parse(std::vector<std::string>{"0", "--replicates", "study"}), CLI::ValidationError);
  CLI::App app2;
  StudyOptions parsed2;
  add_study_command(app2, parsed2);
  app2.parse(std::vector<std::string>{"5", "--seed", "2", "--replicate", "reference", "--protocol", "study"});
  CHECK(parsed2.protocol == "reference");
  CHECK(parsed2.replicate == 2);
  CHECK(parsed2.seed == uint64_t{5});
}
