// The coreset study (PROTOCOLS.md, study 1) as library code. Per replicate it poisons the training
// set with the red square (2% from all classes, relabelled 0), selects half of it with each
// method (full, random, EL2N, forgetting, CRAIG), trains from the replicate's initial weights on
// the selection, prunes with IMP and rewinding, and measures clean accuracy, attack success rate
// and poison retention. Every (method, replicate) cell lives in out/cells/<method>-r<replicate>
// and every stage is written atomically and skipped when present, so a killed study resumes and
// cells can run as separate processes whose folders merge_study_cells combines. `sieve study` is
// flag parsing around these functions:
//
//   StudyConfig c;                       // the quick preset's values, on the synthetic dataset
//   c.methods = chosen_methods("full,random"), c.seeds = study_seeds(std::nullopt, 1);
//   c.epochs = c.score_epochs = c.craig_epochs = 2, c.imp_epochs = c.imp_rounds = 1;
//   c.out = "results/study";
//   const StudyResult r = run_coreset_study(c);
//   write_study_reports(c.out, r.rows, reference_csv, r.config);
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/device.h"
#include "training/trainer.h"

namespace sieve {

// Everything a study's run depends on, resolved: no presets, no zeros left to fill.
struct StudyConfig {
  std::vector<std::string> methods;  // the study's names, in its order (chosen_methods)
  std::vector<uint64_t> seeds;       // one per replicate (study_seeds); replicate r draws with seeds[r]
  int64_t replicate = -1;            // run only this replicate (0-based); -1: all
  std::string protocol = "seed";     // seed (as the study coded it) | reference (as the method papers)
  std::string model = "resnet20";
  std::string dataset = "synthetic";  // synthetic | cifar10
  std::string data;                   // the dataset's folder (cifar-10-batches-bin)
  int64_t train_subset = 0, test_subset = 0;  // 0: all; else a random subset seeded by seeds[0]
  int64_t epochs = 2;                 // dense and subset training
  int64_t score_epochs = 2;           // EL2N and forgetting scoring
  int64_t craig_epochs = 2;           // CRAIG pre-training
  int64_t imp_epochs = 1, imp_rounds = 1;
  bool selection_only = false;        // selections and poison retention only, no training
  Device device = Device::cpu;
  bool cuda_graph = true;              // CUDA: replay the training step from a captured graph
  std::string out;                    // cells go to out/cells
  std::string preset = "custom", precision = "fp32";  // recorded in config.json (precision: set_precision)
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

// The finished cells of a run (sorted: method in the study's order, then replicate) and the
// record of the run that config.json keeps (its "key": what every cell's numbers depend on).
struct StudyResult {
  std::vector<StudyRow> rows;
  nlohmann::json config;
};

// Runs (or continues) every chosen cell; checks the config before anything is loaded.
StudyResult run_coreset_study(const StudyConfig& config);
// The cells of earlier runs' out folders, as one study; they must share one key and no cell may
// appear twice.
StudyResult merge_study_cells(const std::vector<std::string>& folders);

// backdoor_all_replicates.csv, backdoor_aggregated_results.csv (mean and population std over
// replicates), backdoor_aggregated_loss_history.csv, results.md (beside the published aggregate
// when `reference` exists), results.png, loss_history.png and config.json, atomically into out.
void write_study_reports(const std::string& out, const std::vector<StudyRow>& rows, const std::string& reference,
                         const nlohmann::json& config);

// --methods: a comma list of full, random, el2n, forgetting, craig -> the study's names, in its order.
std::vector<std::string> chosen_methods(const std::string& spec);

// --methods: a comma list of full, random, el2n, forgetting, craig -> the study's names, in its order.
std::vector<std::string> chosen_methods(const std::string& spec);
// The replicates' seeds: seed + r, or without a seed the study's three published seeds.
std::vector<uint64_t> study_seeds(std::optional<uint64_t> seed, int64_t replicates);

}  // namespace sieve
