// The device flags of every command that trains: --device and --cuda-graph.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace sieve {

// device: auto | cpu | cuda; cuda_graph: on | off (read with cuda_graph_on).
void add_device_flags(CLI::App* c, std::string& device, std::string& cuda_graph);
inline bool cuda_graph_on(const std::string& flag) { return flag == "on"; }

}  // namespace sieve
