// `sieve train`: trains one model on one dataset and writes config.json, metrics (CSV, JSON),
// a loss/accuracy plot, the final weights and a resumable checkpoint under --out.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "training/trainer.h"

namespace sieve {

struct TrainOptions {
  std::string model = "resnet20";
  std::string dataset = "synthetic";
  std::string data;  // dataset folder (not needed for synthetic)
  std::string device = "auto", cuda_graph = "on";
  std::string precision = "fp32";
  std::string out = "results/train";
  std::string preset;  // "" or "quick"
  int64_t train_subset = 0, test_subset = 0;  // 0 = all; else a seeded random subset of that size
  bool resume = false;
  bool resnet20_option_b = false;
  TrainConfig train;
};


// Registers the subcommand; `run` is called with the parsed options.
CLI::App* add_train_command(CLI::App& app, TrainOptions& options);
// Applies --preset (only to settings the user did not give) and runs. Returns the history.
std::vector<EpochStats> run_train(TrainOptions options, const CLI::App* parsed = nullptr);

}  // namespace sieve
