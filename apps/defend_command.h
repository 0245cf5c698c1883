// `sieve defend`: the flags of the poisoned-sample-scoring benchmark (PROTOCOLS.md, study 2). The
// command resolves them (preset, published setting or custom one, defaults) into one
// DefenseBenchmarkConfig per setting, runs studies/defense_benchmark.h on each and writes and
// prints the report beside the published table.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "studies/defense_benchmark.h"

namespace sieve {

struct DefendOptions {
  std::string setting;  // a published setting, "all", or empty for the custom flags below
  std::string model = "resnet20", dataset = "cifar10", trigger = "badnets";
  std::string data, data_root;  // dataset folder (one setting) / root of the conventional folders (all)
  double alpha = 0.2, poison_fraction = 0.05;
  int64_t target = 0;
  bool all_classes = false;
  std::string defenses = "all";
  double removal_factor = 1.0;
  double assumed_fraction = -1;  // the fraction the defenses are told; < 0: the true poison fraction
  uint64_t seed = 0;
  std::string preset = "paper";
  int64_t epochs = 100, retrain_epochs = 0, batch_size = 128;
  double lr = 0.1;
  int64_t train_subset = 0, test_subset = 0;
  bool augment = true;  // RandomCrop(32, pad 4) + HFlip, as published
  std::string device = "auto", precision, out = "results/defend", cuda_graph = "on";  // precision "": preset's
  std::vector<std::string> offline;  // feature dumps of earlier runs: score only
  std::vector<std::string> scores;   // external scores files (defense external:<stem>); offline: one per dump
  std::string reference;  // the published table (CSV); default ../shared/reference/defense_benchmark.csv
};

CLI::App* add_defend_command(CLI::App& app, DefendOptions& options);
// Applies the preset to the flags not given (`parsed`: the parsed subcommand, or none) and runs.
std::vector<DefenseRow> run_defend(DefendOptions options, const CLI::App* parsed = nullptr);

}  // namespace sieve
