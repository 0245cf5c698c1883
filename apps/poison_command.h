// `sieve poison --preview`: poisons a dataset's training split and writes a PNG of the first
// poisoned images before and after the trigger, with a one-line count of what was poisoned.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace sieve {

struct PoisonOptions {
  std::string dataset = "synthetic";
  std::string data;  // dataset folder (not needed for synthetic)
  std::string trigger = "badnets";  // badnets | red_square | blend | blend:<image path>
  double alpha = 0.2;               // blend weight of the trigger
  int64_t target = 0;
  double fraction = 0.05;
  uint64_t seed = 0;        // poison selection and the blend noise pattern
  bool all_classes = false; // draw poisons from every class (study 1), not only non-target ones
  std::string preview;      // PNG path (required)
  int64_t count = 8;        // poisoned images shown
};

// Registers the subcommand; run_poison is called with the parsed options.
CLI::App* add_poison_command(CLI::App& app, PoisonOptions& options);
void run_poison(const PoisonOptions& options);

}  // namespace sieve
