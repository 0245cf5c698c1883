// The poisoned-sample-scoring defense benchmark (PROTOCOLS.md, study 2) as library code. For one
// setting it poisons the training set, trains the victim, extracts penultimate features and
// logits, lets every defense score every sample, removes the top round(removal_factor * fraction
// * N), retrains from scratch on what is left and measures clean accuracy, attack success rate
// and detection quality. Every stage is written atomically under out/<setting> and skipped when
// present, so a killed benchmark continues where it stopped. `sieve defend` is flag parsing
// around these functions; a program of its own calls them the same way:
//
//   DefenseBenchmarkConfig c;
//   c.setting = published_defense_settings()[0];
//   c.data = "data/cifar-10-batches-bin", c.defenses = chosen_defenses("all"), c.out = "results/defend";
//   const std::vector<DefenseRow> rows = run_defense_benchmark(c);
//   write_defense_reports(c.out, rows, load_published_defense_rows(reference_csv), run_info("cpu"));
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/device.h"

namespace sieve {

// A setting: the model, the dataset, the trigger and the fraction of the training set poisoned.
struct DefenseSetting {
  std::string name, model, dataset, trigger;
  std::string folder;  // the dataset's conventional folder under a data root ("" if none)
  double fraction = 0.05;
};
// PROTOCOLS.md, study 2: resnet20-cifar10-badnets, vgg16bn-cifar100-blend, mobilenetv2-fmnist-badnets.
const std::vector<DefenseSetting>& published_defense_settings();

// Everything one setting's run depends on, resolved: no presets, no defaults left to fill.
struct DefenseBenchmarkConfig {
  DefenseSetting setting;
  std::string data;  // the dataset's folder (unused for the synthetic dataset)
  double alpha = 0.2;  // blend triggers
  int64_t target = 0;
  bool all_classes = false;            // draw poisons from every class, the target too
  std::vector<std::string> defenses;   // built-in defense names (chosen_defenses)
  std::vector<std::string> scores;     // scores files computed outside (defense external:<stem>)
  double removal_factor = 1.0;
  double assumed_fraction = -1;        // the fraction the defenses are told; < 0: the true one
  uint64_t seed = 0;                   // poisoning, initialisation, shuffling
  int64_t epochs = 100, retrain_epochs = 0, batch_size = 128;  // retrain_epochs 0: epochs
  double lr = 0.1;                     // cosine from here
  int64_t train_subset = 0, test_subset = 0;  // 0: all; else a seeded random subset
  bool augment = true;                 // RandomCrop(32, pad 4) + HFlip, as published
  Device device = Device::cpu;
  std::string precision = "fp32";       // the matrix precision set for the run (a setting's key)
  bool cuda_graph = true;              // CUDA: replay the training step from a captured graph
  std::string out;                     // the benchmark's folder; the setting lives in out/<name>
};

// One defense (or "none", the victim) on one setting. NaN where a value does not apply: recall,
// AUROC and the published score on a training set without poisons (nothing to find), accuracy
// and ASR offline (no retrain).
struct DefenseRow {
  std::string setting, defense;
  double clean_acc = 0, asr = 0, recall = 0, precision = 0, auroc = 0;
  int64_t budget = 0, removed_poisons = 0, poisons = 0;
  std::vector<int64_t> removed_per_class;  // what the defense removed, by training label (empty for "none")
  double score_published() const { return (clean_acc + (1 - asr) + recall) / 3; }  // the seed's table
  double score_later() const { return 0.5 * clean_acc + 0.5 * (1 - asr); }         // the later version
};

// Runs (or continues) one setting: the victim row ("none"), then one row per defense, built-in
// defenses first, then the scores files. Fails before any training on bad data or scores files.
std::vector<DefenseRow> run_defense_benchmark(const DefenseBenchmarkConfig& config);

// Detection quality only, on feature dumps of earlier runs (features.safetensors): one row per
// (dump, defense); clean_acc and asr are NaN. scores: none, or one scores file per dump.
// Writes offline.csv and offline.md into out.
struct OfflineScoringConfig {
  std::vector<std::string> dumps, scores, defenses;
  double removal_factor = 1.0;
  double assumed_fraction = -1;  // < 0: the fraction recorded in each dump
  std::string out;
};
std::vector<DefenseRow> score_feature_dumps(const OfflineScoringConfig& config);

// The published table (CSV: method,type,setting,clean_acc,asr,poison_recall,defense_score);
// empty when the file does not exist.
struct PublishedDefenseRow {
  std::string method, type, setting;
  double clean_acc = 0, asr = 0, recall = 0, score = 0;
};
std::vector<PublishedDefenseRow> load_published_defense_rows(const std::string& path);

// results.csv, results.json (with `info`, the run record) and results.md (sieve's rows beside the
// published ones, per setting), atomically into out.
void write_defense_reports(const std::string& out, const std::vector<DefenseRow>& rows,
                           const std::vector<PublishedDefenseRow>& published, const nlohmann::json& info);
// The rows as a table on standard error.
void print_defense_rows(const std::vector<DefenseRow>& rows);

// "all", "none" or a comma list of known defense names -> the names; unknown names are an error.
std::vector<std::string> chosen_defenses(const std::string& spec);
// The defense name of an external scores file: "external:" and the file's stem.
std::string external_defense_name(const std::string& path);

}  // namespace sieve
