// Every model maps images (N, C, H, W) to penultimate features (N, D) and logits (N, classes);
// the defenses and selection methods read the features, the loss reads the logits.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace sieve {

struct ModelOutput {
  Tensor features;  // (N, D), the input of the final linear layer
  Tensor logits;    // (N, classes)
};

class Model : public Module {
 public:
  virtual ModelOutput forward(const Tensor& x) = 0;
  virtual int64_t feature_dim() const = 0;
};

struct ModelConfig {
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  uint64_t seed = 0;            // initialisation stream
  bool resnet20_option_a = true;  // ResNet-20 shortcut: A (zero-pad, He et al.) or B (1x1 conv + BN)
  // The classifier's dropout rate: < 0 keeps the architecture's own (vgg16_bn 0.5, mobilenet_v2
  // 0.2), 0 switches dropout off; the ResNets have none.
  double dropout = -1;
};

// Names: resnet18, resnet20, vgg16_bn, mobilenet_v2.
std::unique_ptr<Model> make_model(const std::string& name, const ModelConfig& config);
std::vector<std::string> model_names();

}  // namespace sieve
