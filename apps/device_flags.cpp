#include "apps/device_flags.h"

namespace sieve {

void add_device_flags(CLI::App* c, std::string& device, std::string& cuda_graph) {
  c->add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--cuda-graph", cuda_graph, "on | off: on CUDA, replay the training step from one captured CUDA graph")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
}

}  // namespace sieve
