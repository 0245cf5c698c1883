// `sieve study`: the coreset study (PROTOCOLS.md, study 1). Per replicate it poisons the training
// set with the red square (2% from all classes, relabelled 0), selects half of it with each
// method (full, random, EL2N, forgetting, CRAIG), trains from the replicate's initial weights on
// the selection, prunes with IMP and rewinding, and reports clean accuracy, attack success rate
// and poison retention in the study's own CSV schemas beside the published numbers. Every
// (method, replicate) cell lives in its own folder and every stage is written atomically and
// skipped when present, so a killed study resumes and cells can run as separate processes whose
// folders --merge combines.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace sieve {

// Zero (or empty) numeric and model settings take the preset's value: paper | quick.
struct StudyOptions {
  std::string methods = "full,random,el2n,forgetting,craig";
  int64_t replicates = 0;        // 3 | 1
  int64_t replicate = -1;        // run only this replicate (0-based); -1 = all
  std::optional<uint64_t> seed;  // replicate r uses seed + r; unset: the study's published seeds
  std::string protocol = "seed";  // seed | reference
  int64_t imp_rounds = 0;         // 2 | 1
  std::string preset = "paper";   // paper: CIFAR-10 from --data; quick: the synthetic dataset
  std::string model;              // resnet18 | resnet20
  std::string data;               // cifar-10-batches-bin
  int64_t train_subset = 0, test_subset = 0;  // 0 = all; else a seeded random subset
  int64_t epochs = 0;        // dense and subset training: 50 | 2
  int64_t score_epochs = 0;  // EL2N and forgetting scoring: 20 | 2
  int64_t craig_epochs = 0;  // CRAIG pre-training: 10 | 2
  int64_t imp_epochs = 0;    // each IMP round: 10 | 1
  bool selection_only = false;  // selections and poison retention only, no training
  std::string device = "auto", precision = "fp32", out = "results/study";
  std::vector<std::string> merge;  // out folders whose cells make one report in --out
  // The published aggregate (CSV); default ../shared/reference/coreset_study_backdoor_aggregated_results.csv
  std::string reference;
};

// One (method, replicate) cell: the study's CSV row, then sieve's extra columns. Values a cell
// has not reached (all training results under --selection-only) are NaN.
struct StudyRow {
  std::string method;  // the study's name: full, random, el2n, forget, craig
  int64_t replicate_idx = 0;
  uint64_t seed = 0;
  int64_t subset_size = 0, poison_kept = 0, poison_total = 0;
  double poison_retention = NAN;
  double clean_acc = NAN, asr = NAN, pruned_acc = NAN, pruned_asr = NAN, pruned_test_loss = NAN;
  double asr_nontarget = NAN, pruned_asr_nontarget = NAN;  // the standard ASR: non-target test images only
  double pruned_kept_fraction = NAN;                      // prunable weights alive after the last IMP round
  std::string selection_note;  // how the selection was drawn or cut (selection.json), for results.md
  std::vector<EpochStats> history;                         // the dense (or subset) training run
};

CLI::App* add_study_command(CLI::App& app, StudyOptions& options);
// Runs the chosen cells (or merges --merge folders) and writes the report; returns every
// finished cell in the study's order (method, then replicate).
std::vector<StudyRow> run_study(StudyOptions options);

// backdoor_all_replicates.csv, backdoor_aggregated_results.csv (mean and population std over
// replicates), backdoor_aggregated_loss_history.csv, results.md (beside the published aggregate
// when `reference` exists), results.png, loss_history.png and config.json, atomically into out.
void write_study_reports(const std::string& out, const std::vector<StudyRow>& rows, const std::string& reference,
                         const nlohmann::json& config);

// --methods: a comma list of full, random, el2n, forgetting, craig -> the study's names, in its order.
std::vector<std::string> chosen_methods(const std::string& spec);

}  // namespace sieve
