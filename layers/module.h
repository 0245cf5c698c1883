// Module: the base of every layer and model. It owns named parameters (learnable), buffers
// (running statistics, counters) and child modules, and names them exactly like PyTorch's
// state_dict keys ("layer1.0.conv1.weight"), in PyTorch's order: a module's own parameters,
// then its own buffers, then its children depth-first.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace sieve {

using NamedTensors = std::vector<std::pair<std::string, Tensor*>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  NamedTensors named_parameters();
  NamedTensors named_buffers();
  NamedTensors named_state();  // parameters and buffers in state_dict order
  int64_t parameter_count();

  StateDict state_dict();
  // Strict: every key of the module must be present with the same shape, and no extra keys.
  // Values are copied into the existing tensors (converted to their dtype and device).
  void load_state_dict(const StateDict& state);

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves every parameter and buffer to `device` (before flatten_parameters, which re-points them).
  void to(Device device);
  // Converts every floating-point parameter and buffer to `dtype` (f64 for exact CPU checks).
  void to(DType dtype);

  // Visits this module and every descendant, depth-first.
  void for_each_module(const std::function<void(Module&)>& visit);

 protected:
  Tensor& register_parameter(const std::string& name, Tensor value);
  Tensor& register_buffer(const std::string& name, Tensor value);
  template <class M>
  M& register_module(const std::string& name, std::unique_ptr<M> module) {
    M& ref = *module;
    children_.emplace_back(name, std::move(module));
    return ref;
  }

 private:
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out);

  // unique_ptr keeps addresses stable: flatten_parameters re-points parameters through them.
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> params_;
  std::vector<std::pair<std::string, std::unique_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace sieve
