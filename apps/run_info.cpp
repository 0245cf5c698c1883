#include "apps/run_info.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <thread>

#include "engine/device.h"
#include "engine/io.h"

namespace sieve {

std::string git_commit() {
  std::string out;
  FILE* p = popen("git -C " SIEVE_SOURCE_DIR " rev-parse --short=12 HEAD 2>/dev/null", "r");
  if (p) {
    std::array<char, 64> buf{};
    while (fgets(buf.data(), buf.size(), p)) out += buf.data();
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty()) return "unknown";
  FILE* d = popen("git -C " SIEVE_SOURCE_DIR " status --porcelain --untracked-files=no 2>/dev/null", "r");
  if (d) {
    const bool dirty = fgetc(d) != EOF;
    pclose(d);
    if (dirty) out += "-dirty";
  }
  return out;
}

nlohmann::json run_info(const std::string& device) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return {{"commit", git_commit()},
          {"device", device},
          {"gpu", cuda_device_description()},
          {"libraries", cuda_library_versions()},
          {"cpu_threads", std::thread::hardware_concurrency()},
          {"host", host},
          {"started_utc", when}};
}

void save_json(const std::string& path, const nlohmann::json& value) { write_file_atomic(path, value.dump(2) + "\n"); }

}  // namespace sieve
