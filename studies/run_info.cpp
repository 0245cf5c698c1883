#include "studies/run_info.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <thread>

#include "engine/device.h"
#include "engine/io.h"
#include "studies/plot.h"

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

namespace {

std::string metrics_csv(const std::vector<EpochStats>& h) {
  std::ostringstream os;
  os << "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_s\n";
  for (const EpochStats& s : h)
    os << s.epoch << ',' << s.lr << ',' << s.train_loss << ',' << s.train_acc << ',' << s.test_loss << ','
       << s.test_acc << ',' << s.seconds << ',' << s.images_per_s << '\n';
  return os.str();
}

}  // namespace

void write_history(const std::string& dir, const std::vector<EpochStats>& history, const std::string& title) {
  const std::filesystem::path out(dir);
  write_file_atomic((out / "metrics.csv").string(), metrics_csv(history));
  nlohmann::json metrics = nlohmann::json::array();
  for (const EpochStats& s : history)
    metrics.push_back({{"epoch", s.epoch}, {"lr", s.lr}, {"train_loss", s.train_loss}, {"train_acc", s.train_acc},
                       {"test_loss", s.test_loss}, {"test_acc", s.test_acc}, {"seconds", s.seconds},
                       {"images_per_s", s.images_per_s}});
  write_file_atomic((out / "metrics.json").string(),
                    nlohmann::json{{"final", metrics.back()}, {"history", metrics}}.dump(2) + "\n");
  write_training_plot((out / "curves.png").string(), history, title);
}

}  // namespace sieve
