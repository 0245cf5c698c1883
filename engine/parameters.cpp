#include "engine/parameters.h"

#include <set>

namespace sieve {

FlatParameters flatten_parameters(const std::vector<std::pair<std::string, Tensor*>>& params,
                                  Device device) {
  FlatParameters flat;
  std::set<std::string> seen_names;
  std::set<const Tensor*> seen_tensors;
  int64_t total = 0;
  for (const auto& [name, param] : params) {
    SIEVE_CHECK(param != nullptr && param->defined(), "flatten_parameters: parameter '", name,
                "' is undefined");
    check_dtype("flatten_parameters", *param, name.c_str(), params.front().second->dtype());
    SIEVE_CHECK(param->dtype() == DType::f32 || (param->dtype() == DType::f64 && device == Device::cpu),
                "flatten_parameters: parameters must be f32 (or f64 on the CPU), got ", dtype_name(param->dtype()));
    SIEVE_CHECK(seen_names.insert(name).second, "flatten_parameters: name '", name,
                "' appears twice");
    SIEVE_CHECK(seen_tensors.insert(param).second, "flatten_parameters: parameter '", name,
                "' is listed twice");
    flat.names.push_back(name);
    flat.offsets.push_back(total);
    flat.shapes.push_back(param->shape());
    total += (param->numel() + kParameterAlignment - 1) / kParameterAlignment * kParameterAlignment;
  }
  const DType dtype = params.empty() ? DType::f32 : params.front().second->dtype();
  flat.values = Tensor::zeros({total}, dtype, device);
  flat.grads = Tensor::zeros({total}, dtype, device);
  for (size_t k = 0; k < params.size(); ++k) {
    Tensor& param = *params[k].second;
    Tensor view = flat.values.slice(flat.offsets[k], flat.shapes[k]);
    view.copy_(param);
    view.set_requires_grad(true);
    view.set_grad(flat.grads.slice(flat.offsets[k], flat.shapes[k]));
    param = view;
  }
  return flat;
}

}  // namespace sieve
