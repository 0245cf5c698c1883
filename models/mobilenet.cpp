// MobileNetV2 (Sandler et al. 2018), width 1.0, torchvision's layout, names and initialisation,
// with the CIFAR strides: the stem and the first stride-2 stage (24 channels) run at stride 1,
// so a 32x32 input reaches the head at 4x4. Features: the 1280-d pooled head output.
#include "engine/init.h"
#include "engine/ops/elementwise.h"
#include "layers/layers.h"
#include "models/registry.h"

namespace sieve {

namespace {

// conv (no bias) -> BN -> ReLU6, as torchvision's Conv2dNormActivation (children 0, 1, 2). The
// ReLU6 is fused into the BN kernel (one pass over the activation instead of two, forward and
// backward); it keeps its index (2) free, as VGG's fused ReLU does.
std::unique_ptr<Sequential> conv_bn_relu6(int64_t in, int64_t out, int kernel, int stride, int groups,
                                          Generator& gen) {
  auto s = std::make_unique<Sequential>();
  s->add("0", std::make_unique<Conv2d>(in, out, kernel, Conv2dParams{stride, (kernel - 1) / 2, groups}, false, gen));
  s->add("1", std::make_unique<BatchNorm2d>(out, /*relu=*/true, 1e-5, 0.1, /*relu_cap=*/6.0));
  return s;
}

// Expand 1x1 (when t != 1) -> depthwise 3x3 -> project 1x1 + BN; residual when shapes allow.
class InvertedResidual : public Layer {
 public:
  InvertedResidual(int64_t in, int64_t out, int stride, int64_t expand, Generator& gen)
      : residual_(stride == 1 && in == out) {
    const int64_t hidden = in * expand;
    auto conv = std::make_unique<Sequential>();
    if (expand != 1) conv->add(conv_bn_relu6(in, hidden, 1, 1, 1, gen));
    conv->add(conv_bn_relu6(hidden, hidden, 3, stride, static_cast<int>(hidden), gen));
    conv->add(std::make_unique<Conv2d>(hidden, out, 1, Conv2dParams{1, 0, 1}, false, gen));
    conv->add(std::make_unique<BatchNorm2d>(out));
    conv_ = &register_module("conv", std::move(conv));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = conv_->forward(x);
    return residual_ ? add(x, h) : h;
  }

 private:
  bool residual_;
  Sequential* conv_;
};

class MobileNetV2 : public Model {
 public:
  explicit MobileNetV2(const ModelConfig& cfg) {
    Generator gen(cfg.seed);
    // t (expansion), c (channels), n (blocks), s (stride of the first block); CIFAR: row 2 at s = 1.
    const int64_t plan[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    auto features = std::make_unique<Sequential>();
    features->add(conv_bn_relu6(cfg.in_channels, 32, 3, /*stride=*/1, 1, gen));
    int64_t in = 32;
    for (const auto& row : plan)
      for (int64_t b = 0; b < row[2]; ++b) {
        features->add(std::make_unique<InvertedResidual>(in, row[1], b == 0 ? static_cast<int>(row[3]) : 1, row[0], gen));
        in = row[1];
      }
    features->add(conv_bn_relu6(in, 1280, 1, 1, 1, gen));
    features_ = &register_module("features", std::move(features));
    pool_ = &register_module("pool", std::make_unique<GlobalAvgPool>());
    auto classifier = std::make_unique<Sequential>();
    dropout_ = &classifier->add(std::make_unique<Dropout>(cfg.dropout < 0 ? 0.2 : cfg.dropout, cfg.seed + 1));
    fc_ = &classifier->add(std::make_unique<Linear>(1280, cfg.num_classes, true, gen));
    register_module("classifier", std::move(classifier));

    // torchvision: convs kaiming_normal fan_out, BN 1 / 0 (as constructed), linear N(0, 0.01) / 0.
    for (auto& [name, t] : named_parameters())
      if (t->ndim() == 4) kaiming_normal_fan_out_relu_(*t, gen);
    constant_(fc_->bias(), 0.0);
    normal_(fc_->weight(), 0.0, 0.01, gen);
  }

  ModelOutput forward(const Tensor& x) override {
    Tensor features = pool_->forward(features_->forward(x));
    return {features, fc_->forward(dropout_->forward(features))};
  }
  int64_t feature_dim() const override { return 1280; }

 private:
  Sequential* features_;
  GlobalAvgPool* pool_;
  Dropout* dropout_;
  Linear* fc_;
};

}  // namespace

std::unique_ptr<Model> make_mobilenet_v2(const ModelConfig& cfg) { return std::make_unique<MobileNetV2>(cfg); }

}  // namespace sieve
