// VGG-16 with batch norm (configuration D) for 32x32 inputs: five conv stages down to 1x1x512,
// then the classifier Dropout-Linear(512,512)-ReLU-Dropout-Linear(512,512)-ReLU-Linear(512,C).
// Names and initialisation as torchvision's vgg16_bn.
#include "engine/init.h"
#include "engine/ops/elementwise.h"
#include "layers/layers.h"
#include "models/registry.h"

namespace sieve {

namespace {

class Vgg16Bn : public Model {
 public:
  explicit Vgg16Bn(const ModelConfig& cfg) {
    Generator gen(cfg.seed);
    const int64_t M = -1;  // max-pool marker
    const std::vector<int64_t> plan{64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
    auto features = std::make_unique<Sequential>();
    int64_t in = cfg.in_channels;
    int index = 0;  // torchvision's child index: conv, bn, relu per layer, one per pool
    for (int64_t v : plan) {
      if (v == M) {
        features->add(std::to_string(index++), std::make_unique<MaxPool2d>(2, 2));
        continue;
      }
      Conv2d& conv = features->add(std::to_string(index), std::make_unique<Conv2d>(in, v, 3, Conv2dParams{1, 1, 1}, true, gen));
      kaiming_normal_fan_out_relu_(conv.weight(), gen);
      constant_(conv.bias(), 0.0);
      // The ReLU is fused into the BN kernel; it keeps its index (index + 2) free, as in torchvision.
      features->add(std::to_string(index + 1), std::make_unique<BatchNorm2d>(v, /*relu=*/true));
      index += 3;
      in = v;
    }
    features_ = &register_module("features", std::move(features));
    auto head = std::make_unique<Sequential>();
    const double p = cfg.dropout < 0 ? 0.5 : cfg.dropout;
    head->add(std::make_unique<Dropout>(p, cfg.seed + 1));
    lin_.push_back(&head->add(std::make_unique<Linear>(512, 512, true, gen)));
    head->add(std::make_unique<ReLU>());
    head->add(std::make_unique<Dropout>(p, cfg.seed + 2));
    lin_.push_back(&head->add(std::make_unique<Linear>(512, 512, true, gen)));
    head->add(std::make_unique<ReLU>());
    penultimate_ = &register_module("classifier", std::move(head));
    fc_ = &penultimate_->add(std::make_unique<Linear>(512, cfg.num_classes, true, gen));
    lin_.push_back(fc_);
    for (Linear* l : lin_) {
      normal_(l->weight(), 0.0, 0.01, gen);
      constant_(l->bias(), 0.0);
    }
  }

  ModelOutput forward(const Tensor& x) override {
    SIEVE_CHECK(x.ndim() == 4 && x.dim(2) == 32 && x.dim(3) == 32, "vgg16_bn: expects 32x32 inputs, got ",
                shape_str(x.shape()));
    Tensor h = flatten(features_->forward(x));
    // classifier children 0..5 give the 512-d features; child 6 is the final linear layer.
    Tensor features = penultimate_->forward(h, 0, 6);
    return {features, fc_->forward(features)};
  }
  int64_t feature_dim() const override { return 512; }

 private:
  Sequential* features_;
  Sequential* penultimate_;
  Linear* fc_;
  std::vector<Linear*> lin_;
};

}  // namespace

std::unique_ptr<Model> make_vgg16_bn(const ModelConfig& cfg) { return std::make_unique<Vgg16Bn>(cfg); }

}  // namespace sieve
