// `sieve defend`: the poisoned-sample-scoring benchmark (PROTOCOLS.md, study 2). For each setting
// it poisons the training set, trains the victim, extracts penultimate features and logits, lets
// every defense score every sample, removes the top round(removal_factor * fraction * N),
// retrains from scratch on what is left and reports clean accuracy, attack success rate, poison
// recall and both published defense scores beside the published table. Every stage is written
// atomically and skipped when present, so a killed benchmark continues where it stopped.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

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
  std::string device = "auto", precision = "fp32", out = "results/defend";
  std::vector<std::string> offline;  // feature dumps of earlier runs: score only
  std::vector<std::string> scores;   // external scores files (defense external:<stem>); offline: one per dump
  std::string reference;  // the published table (CSV); default ../shared/reference/defense_benchmark.csv
};

struct DefenseRow {
  std::string setting, defense;
  double clean_acc = 0, asr = 0, recall = 0, precision = 0, auroc = 0;
  int64_t budget = 0, removed_poisons = 0, poisons = 0;
  double score_published() const { return (clean_acc + (1 - asr) + recall) / 3; }  // the seed's table
  double score_later() const { return 0.5 * clean_acc + 0.5 * (1 - asr); }         // the later version
};

CLI::App* add_defend_command(CLI::App& app, DefendOptions& options);
std::vector<DefenseRow> run_defend(DefendOptions options, const CLI::App* parsed = nullptr);

// --defenses: "all", "none" or a comma list of known defense names; unknown names are an error.
std::vector<std::string> chosen_defenses(const std::string& spec);

}  // namespace sieve
