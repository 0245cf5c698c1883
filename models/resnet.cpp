// ResNet-18 (CIFAR variant of the coreset study) and ResNet-20 (He et al. 2016, CIFAR), both
// from the torchvision-style BasicBlock.
#include <cmath>

#include "engine/init.h"
#include "engine/ops/elementwise.h"
#include "layers/layers.h"
#include "models/model.h"
#include "models/registry.h"

namespace sieve {

namespace {

enum class Shortcut { projection, zero_pad };

// out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). A projection shortcut (1x1 conv +
// BN) is named `shortcut_name` (torchvision: "downsample", ResNet-20 option B: "shortcut").
// Option A (zero_pad) subsamples x[:, :, ::2, ::2] and zero-pads planes/4 channels on each side,
// computed as a fixed 1x1 stride-2 convolution with a 0/1 weight that is no parameter.
class BasicBlock : public Layer {
 public:
  BasicBlock(int64_t in, int64_t planes, int stride, Shortcut kind, const std::string& shortcut_name,
             Generator& gen) {
    conv1_ = &register_module("conv1", std::make_unique<Conv2d>(in, planes, 3, Conv2dParams{stride, 1, 1}, false, gen));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm2d>(planes, /*relu=*/true));
    conv2_ = &register_module("conv2", std::make_unique<Conv2d>(planes, planes, 3, Conv2dParams{1, 1, 1}, false, gen));
    bn2_ = &register_module("bn2", std::make_unique<BatchNorm2d>(planes));
    if (stride == 1 && in == planes) return;
    if (kind == Shortcut::projection) {
      auto seq = std::make_unique<Sequential>();
      seq->add(std::make_unique<Conv2d>(in, planes, 1, Conv2dParams{stride, 0, 1}, false, gen));
      seq->add(std::make_unique<BatchNorm2d>(planes));
      projection_ = &register_module(shortcut_name, std::move(seq));
    } else {
      SIEVE_CHECK(stride == 2 && planes == in * 2, "option A shortcut needs stride 2 and doubled planes");
      std::vector<float> w(static_cast<size_t>(planes * in), 0.0f);
      for (int64_t c = 0; c < in; ++c) w[(c + planes / 4) * in + c] = 1.0f;
      pad_weight_ = Tensor::from_vector(w, {planes, in, 1, 1});
    }
  }

  Tensor forward(const Tensor& x) override {
    Tensor h = conv2_->forward(bn1_->forward(conv1_->forward(x)));
    Tensor s = x;
    if (projection_) s = projection_->forward(x);
    if (pad_weight_.defined()) {
      if (pad_weight_.device() != x.device() || pad_weight_.dtype() != x.dtype())
        pad_weight_ = pad_weight_.to(x.dtype()).to(x.device());
      s = conv2d(x, pad_weight_, Tensor(), {2, 0, 1});
    }
    return bn2_->forward_add_relu(h, s);  // relu(bn2(h) + s), one pass
  }

  void init_convs(const std::function<void(Tensor&)>& init) {
    init(conv1_->weight());
    init(conv2_->weight());
    if (projection_)
      for (auto& [name, t] : projection_->named_parameters())
        if (t->ndim() == 4) init(*t);
  }

 private:
  Conv2d *conv1_, *conv2_;
  BatchNorm2d *bn1_, *bn2_;
  Sequential* projection_ = nullptr;
  Tensor pad_weight_;
};

class ResNet : public Model {
 public:
  // widths per stage, blocks per stage; stem = 3x3 stride 1 conv, no max-pool (CIFAR).
  ResNet(const ModelConfig& cfg, const std::vector<int64_t>& widths, const std::vector<int>& blocks,
         Shortcut kind, const std::string& shortcut_name, const std::string& fc_name)
      : feature_dim_(widths.back()) {
    Generator gen(cfg.seed);
    conv1_ = &register_module("conv1", std::make_unique<Conv2d>(cfg.in_channels, widths[0], 3, Conv2dParams{1, 1, 1}, false, gen));
    bn1_ = &register_module("bn1", std::make_unique<BatchNorm2d>(widths[0], /*relu=*/true));
    int64_t in = widths[0];
    for (size_t s = 0; s < widths.size(); ++s) {
      auto stage = std::make_unique<Sequential>();
      for (int b = 0; b < blocks[s]; ++b) {
        const int stride = (s > 0 && b == 0) ? 2 : 1;
        blocks_.push_back(&stage->add(std::make_unique<BasicBlock>(in, widths[s], stride, kind, shortcut_name, gen)));
        in = widths[s];
      }
      stages_.push_back(&register_module("layer" + std::to_string(s + 1), std::move(stage)));
    }
    pool_ = &register_module("avgpool", std::make_unique<GlobalAvgPool>());
    fc_ = &register_module(fc_name, std::make_unique<Linear>(in, cfg.num_classes, true, gen));
  }

  ModelOutput forward(const Tensor& x) override {
    Tensor h = bn1_->forward(conv1_->forward(x));
    for (Sequential* stage : stages_) h = stage->forward(h);
    Tensor features = pool_->forward(h);
    return {features, fc_->forward(features)};
  }
  int64_t feature_dim() const override { return feature_dim_; }

  Conv2d& stem() { return *conv1_; }
  Linear& fc() { return *fc_; }
  void init_block_convs(const std::function<void(Tensor&)>& init) {
    for (BasicBlock* b : blocks_) b->init_convs(init);
  }

 private:
  int64_t feature_dim_;
  Conv2d* conv1_;
  BatchNorm2d* bn1_;
  std::vector<Sequential*> stages_;
  std::vector<BasicBlock*> blocks_;
  GlobalAvgPool* pool_;
  Linear* fc_;
};

}  // namespace

// PROTOCOLS.md study 1: torchvision init (kaiming_normal fan_out) except conv1, which keeps the
// Conv2d default; fc weight N(0, 0.01), bias 0.
std::unique_ptr<Model> make_resnet18(const ModelConfig& cfg) {
  auto m = std::make_unique<ResNet>(cfg, std::vector<int64_t>{64, 128, 256, 512}, std::vector<int>{2, 2, 2, 2},
                                    Shortcut::projection, "downsample", "fc");
  Generator gen(cfg.seed ^ 0x9e3779b97f4a7c15ull);
  m->init_block_convs([&](Tensor& w) { kaiming_normal_fan_out_relu_(w, gen); });
  normal_(m->fc().weight(), 0.0, 0.01, gen);
  constant_(m->fc().bias(), 0.0);
  return m;
}

// He et al. CIFAR ResNet-20, as the common reference implementation initialises it:
// kaiming_normal (fan_in, ReLU gain) for every conv and linear weight, linear bias default.
std::unique_ptr<Model> make_resnet20(const ModelConfig& cfg) {
  auto m = std::make_unique<ResNet>(cfg, std::vector<int64_t>{16, 32, 64}, std::vector<int>{3, 3, 3},
                                    cfg.resnet20_option_a ? Shortcut::zero_pad : Shortcut::projection,
                                    "shortcut", "linear");
  Generator gen(cfg.seed ^ 0x9e3779b97f4a7c15ull);
  auto he_fan_in = [&](Tensor& w) { normal_(w, 0.0, std::sqrt(2.0 / static_cast<double>(fan_in(w.shape()))), gen); };
  he_fan_in(m->stem().weight());
  m->init_block_convs(he_fan_in);
  he_fan_in(m->fc().weight());
  return m;
}

}  // namespace sieve
