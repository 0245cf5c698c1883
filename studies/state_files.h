// The JSON files `sieve defend` and `sieve study` write stage by stage and read back when a run
// resumes or a report is made from finished folders. Each reader checks every field it uses and
// fails with one line naming the file (`name`) and the field: a damaged or hand-edited file is
// refused, never half-read.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/parse.h"

namespace sieve {

// defend: victim/result.json and defenses/<defense>/result.json.
struct AccuracyAsr {
  double clean_acc = NAN, asr = NAN;
};
AccuracyAsr read_accuracy_asr(const json& j, const std::string& name);

// defend: defenses/<defense>/detection.json, for a training set of n samples.
struct DetectionRecord {
  int64_t budget = 0, removed_poisons = 0, poisons = 0;
  double recall = NAN, precision = NAN, auroc = NAN;
  std::vector<int64_t> removed;  // distinct sample indices in [0, n)
};
DetectionRecord read_detection(const json& j, const std::string& name, int64_t n);

// defend: setting.json must hold every field of `key` with the same value (the "run" record
// aside), else the folder belongs to another run.
void check_setting(const json& stored, const json& key, const std::string& name);
// defend --offline: the attack that setting.json describes, in one line for the reports.
std::string describe_setting(const json& setting, const std::string& name);

// study: cells/<cell>/cell.json.
struct CellRecord {
  std::string method;
  int64_t replicate_idx = 0;
  uint64_t seed = 0;
  json study;  // the study's key (an object)
};
CellRecord read_cell(const json& j, const std::string& name);

// study: cells/<cell>/selection.json, for a training set of n samples (n < 0: unknown).
struct SelectionRecord {
  std::vector<int64_t> indices;  // distinct, in [0, n)
  std::vector<float> weights;    // one per index, finite and >= 0, or none (equal weights)
  int64_t subset_size = 0, poison_kept = 0, poison_total = 0;
  double poison_retention = NAN;
  std::string note;  // how the selection was drawn or cut, for results.md
};
SelectionRecord read_selection(const json& j, const std::string& name, int64_t n);

// A result file's number: null (a NaN) and a missing field read as NaN, anything else that is
// not a number is an error.
double optional_number(const json& j, const char* key, const std::string& name);

}  // namespace sieve
