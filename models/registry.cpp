#include "models/registry.h"

#include <map>

namespace sieve {

namespace {
using Factory = std::unique_ptr<Model> (*)(const ModelConfig&);
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f{{"mobilenet_v2", make_mobilenet_v2},
                                                {"resnet18", make_resnet18},
                                                {"resnet20", make_resnet20},
                                                {"vgg16_bn", make_vgg16_bn}};
  return f;
}
}  // namespace

std::unique_ptr<Model> make_model(const std::string& name, const ModelConfig& config) {
  auto it = factories().find(name);
  if (it == factories().end()) {
    std::string known;
    for (auto& [n, f] : factories()) known += (known.empty() ? "" : ", ") + n;
    fail("--model: unknown model '", name, "' (known: ", known, ")");
  }
  SIEVE_CHECK(config.num_classes >= 1, "--model ", name, ": num_classes must be >= 1");
  SIEVE_CHECK(config.dropout < 1, "--model ", name, ": dropout must be below 1 (< 0: the architecture's own), got ",
              config.dropout);
  return it->second(config);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (auto& [n, f] : factories()) names.push_back(n);
  return names;
}

}  // namespace sieve
