// `sieve bench`: training and evaluation throughput of the four models, per batch size,
// precision and device, optionally side by side with the PyTorch twin (apps/bench/torch_twin.py)
// run in the same command; writes bench.json and bench.md under results/bench-<machine>/.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace sieve {

struct BenchOptions {
  std::vector<std::string> models{"resnet20", "resnet18", "vgg16_bn", "mobilenet_v2"};
  std::vector<int64_t> batch_sizes{128};
  std::vector<std::string> precisions{"fp32"};
  std::string device = "auto";
  int64_t warmup_steps = 5, steps = 20, repeats = 3, eval_batches = 4;
  std::string data;  // CIFAR-10 binary folder: also time one full training epoch on it
  bool compare = false;
  std::vector<std::string> torch_configs;  // default: every config of the row's precision
  std::string python = "python3", twin;
  int64_t gemm_size = 4096;  // 0: do not measure the GEMM peaks
  std::string out;           // default results/bench-<machine>
};

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o);
void run_bench(const BenchOptions& o);

}  // namespace sieve
