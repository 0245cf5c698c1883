// sieve bench: one row per (model, batch size, precision). A row times training steps exactly as
// the trainer runs them (batch assembly with crop + flip, forward, loss, backward, SGD 0.1 / 0.9 /
// 5e-4) over `steps` after `warmup_steps`, `repeats` times (median reported), evaluation in
// batches of 500, and with --data one full epoch of CIFAR-10 training. With --compare the
// PyTorch twin runs right after each sieve row, same model, recipe, batch and thread count, one
// process per configuration, so both programs see the machine in the same state.
#include "apps/bench_command.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "studies/run_info.h"
#include "datasets/dataset.h"
#include "engine/autograd.h"
#include "engine/cpu/onednn.h"
#include "engine/device.h"
#include "engine/flops.h"
#include "engine/io.h"
#include "engine/rng.h"
#include "models/model.h"
#include "training/trainer.h"

namespace sieve {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// The CPU flags that decide which kernels run.
std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string flags;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 2) + " ";
      break;
    }
  std::string out;
  for (const char* f : {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"})
    if (flags.find(std::string(" ") + f + " ") != std::string::npos) out += (out.empty() ? "" : " ") + std::string(f);
  return out;
}

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Peak resident memory since the last reset_peak_rss() (Linux: VmHWM, reset through clear_refs).
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// Random u8 images and labels, as the twin's synthetic data: throughput does not depend on content.
ImageDataset random_images(int64_t n, int64_t classes, uint64_t seed) {
  ImageDataset d;
  d.name = "random";
  d.channels = 3, d.height = 32, d.width = 32, d.num_classes = classes;
  d.images.resize(static_cast<size_t>(n * d.image_bytes()));
  d.labels.resize(static_cast<size_t>(n));
  Generator gen(seed);
  for (auto& p : d.images) p = static_cast<uint8_t>(gen.below(256));
  for (auto& l : d.labels) l = static_cast<int64_t>(gen.below(static_cast<uint64_t>(classes)));
  d.mean = {0.4914f, 0.4822f, 0.4465f};
  d.std = {0.2470f, 0.2435f, 0.2616f};
  return d;
}

struct Row {
  std::string model;
  int64_t batch = 0;
  std::string precision;
  json sieve, torch = json::array();
};

json bench_sieve(const BenchOptions& o, const std::string& model, int64_t batch, const std::string& precision,
                 Device device, const DeviceDataset* epoch_data) {
  set_precision(parse_precision(precision));
  ModelConfig mc;
  auto net = make_model(model, mc);
  const int64_t pool = std::max<int64_t>(2048, batch * 4);
  const DeviceDataset train = to_device(random_images(pool, 10, 1), device);
  TrainConfig tc;
  tc.batch_size = batch;
  tc.epochs = 1 + o.repeats;
  tc.schedule = "constant";
  tc.progress = false;
  reset_peak_rss();
  Trainer trainer(*net, train, nullptr, tc);
  net->train();
  const Tensor correct = Tensor::zeros({1}, DType::i64, device);
  int64_t next = 0;
  double loss = 0;
  auto step = [&] {
    std::vector<int64_t> idx(static_cast<size_t>(batch));
    for (auto& i : idx) i = next++ % pool;
    loss = trainer.train_step(idx, static_cast<uint64_t>(next), 0.1, correct);
  };
  for (int64_t i = 0; i < o.warmup_steps; ++i) step();
  int64_t flops_per_step = 0;
  {
    FlopCount count;
    step();
    flops_per_step = count.flops();
  }
  // Timed: the trainer's own epochs of o.steps full batches (on CUDA the sync-free step, replayed
  // from its CUDA graph after warm-up; the graph is captured in one untimed epoch first).
  std::vector<int64_t> window(static_cast<size_t>(o.steps * batch));
  for (size_t i = 0; i < window.size(); ++i) window[i] = static_cast<int64_t>(i) % pool;
  trainer.set_subset(window);
  if (device == Device::cuda) trainer.run_epoch(0);
  std::vector<double> rates;
  for (int64_t r = 0; r < o.repeats; ++r) {
    cuda_synchronize();
    const auto t0 = Clock::now();
    loss = trainer.run_epoch(1 + r).train_loss;
    cuda_synchronize();
    rates.push_back(static_cast<double>(o.steps * batch) / seconds_since(t0));
  }
  const double train_rate = median(rates);
  // Training costs about 3 forward passes (forward, backward data, backward weights).
  const double train_tflops = 3.0 * static_cast<double>(flops_per_step) / static_cast<double>(batch) * train_rate / 1e12;

  const DeviceDataset eval = to_device(random_images(o.eval_batches * 500, 10, 2), device);
  trainer.evaluate(eval, 500);  // warm-up: plans for the evaluation shapes
  const auto t0 = Clock::now();
  trainer.evaluate(eval, 500);
  const double eval_rate = static_cast<double>(eval.size()) / seconds_since(t0);

  json r = {{"framework", "sieve"},
            {"model", model},
            {"params", net->parameter_count()},
            {"precision", precision},
            {"device", device == Device::cuda ? "cuda" : "cpu"},
            {"threads", omp_get_max_threads()},
            {"batch_size", batch},
            {"train_images_per_s", train_rate},
            {"train_images_per_s_repeats", rates},
            {"train_tflops", train_tflops},
            {"forward_gflop_per_image", static_cast<double>(flops_per_step) / static_cast<double>(batch) / 1e9},
            {"eval_images_per_s", eval_rate},
            {"final_loss", loss},
            {"epoch_seconds", nullptr},
            {"epoch_images_per_s", nullptr}};
  if (epoch_data) {
    ModelConfig ec;
    auto fresh = make_model(model, ec);
    TrainConfig etc;
    etc.batch_size = batch;
    etc.epochs = 1;
    etc.progress = false;
    Trainer epoch_trainer(*fresh, *epoch_data, nullptr, etc);
    const auto e0 = Clock::now();
    const EpochStats s = epoch_trainer.fit().back();
    const double secs = seconds_since(e0);
    r["epoch_seconds"] = secs;
    r["epoch_images_per_s"] = static_cast<double>(epoch_data->size()) / secs;
    r["epoch_train_loss"] = s.train_loss;
    r["epoch_train_acc"] = s.train_acc;
  }
  r["peak_memory_mib"] = device == Device::cuda ? static_cast<double>(cuda_allocator_stats().peak_in_use) / (1 << 20)
                                                : peak_rss_mib();
  r["peak_memory_kind"] = device == Device::cuda ? "device (caching allocator peak)" : "process RSS";
  set_precision(Precision::fp32);
  return r;
}

std::vector<std::string> torch_configs_for(const BenchOptions& o, const std::string& precision, Device device) {
  std::vector<std::string> all;
  if (!o.torch_configs.empty())
    all = o.torch_configs;
  else if (device == Device::cuda)
    all = {"fp32", "bf16_channels_last", "compile", "compile_bf16"};
  else
    all = {"fp32", "fp32_channels_last", "bf16_channels_last"};
  std::vector<std::string> same;
  for (const std::string& c : all)
    if ((c.find("bf16") != std::string::npos) == (precision == "bf16")) same.push_back(c);
  return same;
}

std::string run_capture(const std::string& cmd, int& status) {
  FILE* p = popen(cmd.c_str(), "r");
  SIEVE_CHECK(p, "bench: cannot run '", cmd, "'");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  status = pclose(p);
  return out;
}

json bench_torch(const BenchOptions& o, const std::string& twin, const std::string& model, int64_t batch,
                 const std::string& config, Device device, int64_t params) {
  std::ostringstream cmd;
  cmd << o.python << " '" << twin << "' --model " << model << " --batch-size " << batch << " --device "
      << (device == Device::cuda ? "cuda" : "cpu") << " --threads " << omp_get_max_threads() << " --config " << config
      << " --warmup-steps " << o.warmup_steps << " --steps " << o.steps << " --repeats " << o.repeats
      << " --eval-batches " << o.eval_batches << " --expect-params " << params;
  if (!o.data.empty()) cmd << " --data '" << o.data << "'";
  int status = 0;
  const std::string out = run_capture(cmd.str(), status);
  SIEVE_CHECK(status == 0, "bench --compare: the PyTorch twin failed (exit ", WEXITSTATUS(status), ") for ", model,
              " ", config, ": ", cmd.str());
  try {
    return json::parse(out);
  } catch (const json::exception& e) {
    fail("bench --compare: the PyTorch twin printed no JSON for ", model, " ", config, ": ", e.what());
  }
}

std::string fmt(const json& v, const char* f) {
  if (v.is_null()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v.get<double>());
  return buf;
}

void write_markdown(const std::string& path, const json& doc) {
  std::ostringstream md;
  const json& m = doc["machine"];
  md << "# sieve bench\n\n"
     << "- machine: " << m["name"].get<std::string>() << " (" << m["flags"].get<std::string>() << "), "
     << m["threads"] << " threads\n"
     << "- libraries: " << m["libraries"].get<std::string>() << "\n"
     << "- commit " << doc["commit"].get<std::string>() << ", " << doc["started_utc"].get<std::string>() << "\n"
     << "- recipe: SGD 0.1 / 0.9 / 5e-4, cross-entropy, random crop (pad 4) + flip assembled in the timed loop; "
     << doc["settings"]["steps"] << " steps x " << doc["settings"]["repeats"] << " repeats after "
     << doc["settings"]["warmup_steps"] << " warm-up steps, median; evaluation in batches of 500\n";
  if (m.contains("gemm_peak_tflops_fp32"))
    md << "- GEMM peak (oneDNN, " << doc["settings"]["gemm_size"] << "^3): fp32 "
       << fmt(m["gemm_peak_tflops_fp32"], "%.3f") << " TFLOP/s, bf16 " << fmt(m["gemm_peak_tflops_bf16"], "%.3f")
       << " TFLOP/s\n";
  md << "\n| model | batch | precision | sieve train img/s | sieve eval img/s | epoch s | peak MiB | % GEMM peak |"
        " PyTorch best config | PyTorch train img/s | sieve / PyTorch |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : doc["rows"]) {
    const json& s = r["sieve"];
    std::string best = "-", ratio = "-", torch_rate = "-";
    double best_rate = 0;
    for (const json& t : r["torch"])
      if (t["train_images_per_s"].get<double>() > best_rate) {
        best_rate = t["train_images_per_s"].get<double>();
        best = t["config"].get<std::string>();
      }
    if (best_rate > 0) {
      torch_rate = fmt(best_rate, "%.0f");
      ratio = fmt(s["train_images_per_s"].get<double>() / best_rate, "%.2f");
    }
    const std::string peak_key = "gemm_peak_tflops_" + r["precision"].get<std::string>();
    std::string pct = "-";
    if (m.contains(peak_key) && m[peak_key].get<double>() > 0)
      pct = fmt(100.0 * s["train_tflops"].get<double>() / m[peak_key].get<double>(), "%.0f%%");
    md << "| " << r["model"].get<std::string>() << " | " << r["batch_size"] << " | " << r["precision"].get<std::string>()
       << " | " << fmt(s["train_images_per_s"], "%.0f") << " | " << fmt(s["eval_images_per_s"], "%.0f") << " | "
       << fmt(s["epoch_seconds"], "%.1f") << " | " << fmt(s["peak_memory_mib"], "%.0f") << " | " << pct << " | "
       << best << " | " << torch_rate << " | " << ratio << " |\n";
  }
  bool any_torch = false;
  for (const json& r : doc["rows"]) any_torch |= !r["torch"].empty();
  if (any_torch) {
    md << "\nEvery PyTorch configuration measured (train / eval img/s):\n\n";
    for (const json& r : doc["rows"])
      for (const json& t : r["torch"])
        md << "- " << r["model"].get<std::string>() << " batch " << r["batch_size"] << " " << t["config"].get<std::string>()
           << ": " << fmt(t["train_images_per_s"], "%.0f") << " / " << fmt(t["eval_images_per_s"], "%.0f")
           << (t["epoch_seconds"].is_null() ? "" : ", epoch " + fmt(t["epoch_seconds"], "%.1f") + " s")
           << ", PyTorch " << t["torch_version"].get<std::string>() << "\n";
  }
  write_file_atomic(path, md.str());
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  CLI::App* c = app.add_subcommand("bench", "training / evaluation throughput of the models, optionally beside PyTorch");
  c->add_option("--models", o.models, "models to run")->delimiter(',')->check(CLI::IsMember(model_names()));
  c->add_option("--batch-size", o.batch_sizes, "batch sizes (128, 256, 512, ...)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  c->add_option("--precision", o.precisions, "fp32 | bf16 (a list runs both)")
      ->delimiter(',')
      ->check(CLI::IsMember({"fp32", "bf16"}));
  c->add_option("--device", o.device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  c->add_option("--warmup-steps", o.warmup_steps, "untimed steps first")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  c->add_option("--steps", o.steps, "timed steps per repeat")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  c->add_option("--repeats", o.repeats, "timed repeats (median reported)")->check(CLI::Range(int64_t{1}, int64_t{100}));
  c->add_option("--eval-batches", o.eval_batches, "evaluation batches of 500")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  c->add_option("--data", o.data, "CIFAR-10 binary folder: also time one full training epoch on it")
      ->check(CLI::ExistingDirectory);
  c->add_flag("--compare", o.compare, "run the PyTorch twin after each row, in the same command");
  c->add_option("--torch-configs", o.torch_configs, "PyTorch configurations (default: all of the row's precision)")
      ->delimiter(',');
  c->add_option("--python", o.python, "the Python with PyTorch installed");
  c->add_option("--twin", o.twin, "path of torch_twin.py (default: the source tree's apps/bench/torch_twin.py)");
  c->add_option("--gemm-size", o.gemm_size, "square GEMM size for the fp32 / bf16 peaks (0: skip; CPU only)")
      ->check(CLI::Range(int64_t{0}, int64_t{16384}));
  c->add_option("--out", o.out, "results folder (default results/bench-<machine>)");
  return c;
}

void run_bench(const BenchOptions& o) {
  const Device device = parse_device(o.device);
  for (const std::string& p : o.precisions)
    SIEVE_CHECK(p != "bf16" || device == Device::cpu, "--precision bf16: sieve's bf16 path is the CPU's (oneDNN); "
                "on the GPU use fp32");
  const std::string twin = o.twin.empty() ? std::string(SIEVE_SOURCE_DIR) + "/apps/bench/torch_twin.py" : o.twin;
  if (o.compare) SIEVE_CHECK(std::filesystem::exists(twin), "--twin: ", twin, " does not exist");

  json machine;
  if (device == Device::cuda) {
    machine["name"] = cuda_device_description();
    machine["flags"] = "CUDA";
    machine["libraries"] = cuda_library_versions();
  } else {
    machine["name"] = cpu_model();
    machine["flags"] = cpu_flags();
    machine["libraries"] = cpu::onednn_version() + ", OpenBLAS " + openblas_get_config() +
                           (cpu_winograd() ? "; 3x3 stride-1 convolutions of 32+ channels (64+ under bf16): f32 Winograd"
                                           : "; direct convolution only (SIEVE_CPU_WINOGRAD=0)");
  }
  machine["threads"] = omp_get_max_threads();
  const std::string out = !o.out.empty() ? o.out
                                         : "results/bench-" + (device == Device::cuda ? std::string("cuda-") : "cpu-") +
                                               slug(machine["name"].get<std::string>()) + "-" +
                                               std::to_string(omp_get_max_threads()) + "t";
  std::filesystem::create_directories(out);

  if (device == Device::cpu && o.gemm_size > 0) {
    std::fprintf(stderr, "bench: GEMM peaks (%ld^3) ...\n", long(o.gemm_size));
    machine["gemm_peak_tflops_fp32"] = cpu::gemm_peak_tflops(o.gemm_size, false, 3);
    machine["gemm_peak_tflops_bf16"] = cpu::gemm_peak_tflops(o.gemm_size, true, 3);
    std::fprintf(stderr, "bench: GEMM peak fp32 %.3f TFLOP/s, bf16 %.3f TFLOP/s\n",
                 machine["gemm_peak_tflops_fp32"].get<double>(), machine["gemm_peak_tflops_bf16"].get<double>());
  }

  std::unique_ptr<DeviceDataset> epoch_data;
  if (!o.data.empty()) epoch_data = std::make_unique<DeviceDataset>(to_device(load_cifar10(o.data, true), device));

  json doc = run_info(device == Device::cuda ? "cuda" : "cpu");
  doc["machine"] = machine;
  doc["settings"] = {{"warmup_steps", o.warmup_steps}, {"steps", o.steps},         {"repeats", o.repeats},
                     {"eval_batches", o.eval_batches}, {"gemm_size", o.gemm_size}, {"data", o.data},
                     {"compare", o.compare}};
  doc["rows"] = json::array();
  for (const std::string& model : o.models)
    for (int64_t batch : o.batch_sizes)
      for (const std::string& precision : o.precisions) {
        std::fprintf(stderr, "bench: sieve %s batch %ld %s ...\n", model.c_str(), long(batch), precision.c_str());
        json row = {{"model", model}, {"batch_size", batch}, {"precision", precision}};
        row["sieve"] = bench_sieve(o, model, batch, precision, device, epoch_data.get());
        std::fprintf(stderr, "bench: sieve %s batch %ld %s: train %.0f img/s, eval %.0f img/s\n", model.c_str(),
                     long(batch), precision.c_str(), row["sieve"]["train_images_per_s"].get<double>(),
                     row["sieve"]["eval_images_per_s"].get<double>());
        row["torch"] = json::array();
        if (o.compare)
          for (const std::string& config : torch_configs_for(o, precision, device)) {
            json t = bench_torch(o, twin, model, batch, config, device, row["sieve"]["params"].get<int64_t>());
            std::fprintf(stderr, "bench: PyTorch %s batch %ld %s: train %.0f img/s (sieve / PyTorch %.2f)\n",
                         model.c_str(), long(batch), config.c_str(), t["train_images_per_s"].get<double>(),
                         row["sieve"]["train_images_per_s"].get<double>() / t["train_images_per_s"].get<double>());
            row["torch"].push_back(t);
          }
        doc["rows"].push_back(row);
        // Written after every row, so a long comparison that is stopped keeps what it measured.
        save_json(out + "/bench.json", doc);
        write_markdown(out + "/bench.md", doc);
      }
  std::printf("%s", [&] {
    std::ifstream in(out + "/bench.md");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }().c_str());
  std::fprintf(stderr, "bench: wrote %s/{bench.json,bench.md}\n", out.c_str());
}

}  // namespace sieve
