#include "layers/module.h"

#include <set>

namespace sieve {

Tensor& Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  params_.emplace_back(name, std::make_unique<Tensor>(std::move(value)));
  return *params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.emplace_back(name, std::make_unique<Tensor>(std::move(value)));
  return *buffers_.back().second;
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) {
  if (params)
    for (auto& [name, t] : params_) out.emplace_back(prefix + name, t.get());
  if (buffers)
    for (auto& [name, t] : buffers_) out.emplace_back(prefix + name, t.get());
  for (auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers, out);
}

NamedTensors Module::named_parameters() {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

NamedTensors Module::named_buffers() {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::named_state() {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

int64_t Module::parameter_count() {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t->numel();
  return n;
}

StateDict Module::state_dict() {
  StateDict out;
  for (auto& [name, t] : named_state()) out[name] = *t;
  return out;
}

void Module::load_state_dict(const StateDict& state) {
  std::set<std::string> expected;
  for (auto& [name, t] : named_state()) {
    expected.insert(name);
    auto it = state.find(name);
    SIEVE_CHECK(it != state.end(), "load_state_dict: missing key '", name, "'");
    SIEVE_CHECK(it->second.shape() == t->shape(), "load_state_dict: '", name, "' has shape ",
                shape_str(it->second.shape()), " but the model expects ", shape_str(t->shape()));
    t->copy_(it->second.to(t->dtype()));
  }
  for (auto& [name, value] : state)
    SIEVE_CHECK(expected.count(name), "load_state_dict: unexpected key '", name, "'");
}

void Module::for_each_module(const std::function<void(Module&)>& visit) {
  visit(*this);
  for (auto& [name, child] : children_) child->for_each_module(visit);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  for (auto& [name, t] : named_state()) {
    const bool grad = t->requires_grad();
    *t = t->to(device);
    if (grad) t->set_requires_grad(true);
  }
}

void Module::to(DType dtype) {
  for (auto& [name, t] : named_state()) {
    if (!is_floating(t->dtype())) continue;
    const bool grad = t->requires_grad();
    *t = t->to(dtype);
    if (grad) t->set_requires_grad(true);
  }
}

}  // namespace sieve
