// What a results file must say about where it came from (commit, device, libraries, time), and
// the files every run writes the same way (JSON records, a training history).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "engine/parse.h"  // load_json
#include "training/trainer.h"

namespace sieve {

std::string git_commit();  // of the source tree sieve was built from ("unknown" outside git)
nlohmann::json run_info(const std::string& device);  // commit, device, libraries, host, UTC time

// The JSON files of a run, written atomically, indented, newline-terminated (read: load_json).
void save_json(const std::string& path, const nlohmann::json& value);

// metrics.csv, metrics.json and curves.png of a training history, written atomically into dir.
void write_history(const std::string& dir, const std::vector<EpochStats>& history, const std::string& title);

}  // namespace sieve
