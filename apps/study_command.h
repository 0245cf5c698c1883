// `sieve study`: the flags of the coreset study (PROTOCOLS.md, study 1). The command fills the
// preset's values into the flags left unset, checks them, and runs studies/coreset_study.h with
// the resolved StudyConfig (or merges earlier runs' folders), then writes the study's CSV files,
// results.md and plots beside the published numbers.
#pragma once
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "studies/coreset_study.h"

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
  std::string device = "auto", precision = "fp32", out = "results/study", cuda_graph = "on";
  std::vector<std::string> merge;  // out folders whose cells make one report in --out
  // The published aggregate (CSV); default ../shared/reference/coreset_study_backdoor_aggregated_results.csv
  std::string reference;
};

CLI::App* add_study_command(CLI::App& app, StudyOptions& options);
// Runs the chosen cells (or merges --merge folders) and writes the report; returns every
// finished cell in the study's order (method, then replicate).
std::vector<StudyRow> run_study(StudyOptions options);

}  // namespace sieve
