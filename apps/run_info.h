// What a results file must say about where it came from: commit, device, libraries, time.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sieve {

std::string git_commit();  // of the source tree sieve was built from ("unknown" outside git)
nlohmann::json run_info(const std::string& device);  // commit, device, libraries, host, UTC time

// The JSON files of a run: read whole; written atomically, indented, newline-terminated.
nlohmann::json load_json(const std::string& path);
void save_json(const std::string& path, const nlohmann::json& value);

}  // namespace sieve
