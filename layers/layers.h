// The layers models are built from. Each owns its parameters and buffers under PyTorch's names
// and initialises them as PyTorch's constructors do (drawn from a sieve::Generator).
#pragma once
#include <limits>
#include <memory>
#include <vector>

#include "engine/ops/conv2d.h"
#include "engine/rng.h"
#include "layers/module.h"

namespace sieve {

class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
};

// nn.Conv2d: weight (out, in/groups, k, k) ~ kaiming_uniform(a = sqrt(5)); bias U(+-1/sqrt(fan_in)).
class Conv2d : public Layer {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel, Conv2dParams params, bool bias,
         Generator& gen);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *weight_; }
  Tensor& bias() {
    SIEVE_CHECK(bias_ != nullptr, "Conv2d: this convolution has no bias");
    return *bias_;
  }
  const Conv2dParams& params() const { return params_; }

 private:
  Conv2dParams params_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

// nn.BatchNorm2d: weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0.
// relu = true fuses the following ReLU into the same kernel.
class BatchNorm2d : public Layer {
 public:
  // relu: a ReLU fused into the kernel, clamped at relu_cap (+inf: ReLU; 6: ReLU6).
  explicit BatchNorm2d(int64_t channels, bool relu = false, double eps = 1e-5, double momentum = 0.1,
                       double relu_cap = std::numeric_limits<double>::infinity());
  Tensor forward(const Tensor& x) override;
  // relu(bn(x) + residual) in one kernel: a ResNet block's residual join (this layer's own relu
  // flag aside).
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual);
  Tensor& weight() { return *weight_; }

 private:
  bool relu_;
  double eps_, momentum_, relu_cap_;
  Tensor *weight_, *bias_, *running_mean_, *running_var_, *num_batches_tracked_;
};

// nn.Linear: weight (out, in) ~ kaiming_uniform(a = sqrt(5)); bias U(+-1/sqrt(in)).
class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) override;
  Tensor& weight() { return *weight_; }
  Tensor& bias() {
    SIEVE_CHECK(bias_ != nullptr, "Linear: this layer has no bias");
    return *bias_;
  }

 private:
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

class ReLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

class ReLU6 : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

class MaxPool2d : public Layer {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0) : kernel_(kernel), stride_(stride), padding_(padding) {}
  Tensor forward(const Tensor& x) override;

 private:
  int kernel_, stride_, padding_;
};

class AvgPool2d : public Layer {
 public:
  AvgPool2d(int kernel, int stride, int padding = 0) : kernel_(kernel), stride_(stride), padding_(padding) {}
  Tensor forward(const Tensor& x) override;

 private:
  int kernel_, stride_, padding_;
};

// (N, C, H, W) -> (N, C)
class GlobalAvgPool : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

class Flatten : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

// Inverted dropout with its own Philox stream (seeded at construction), active in training only.
class Dropout : public Layer {
 public:
  Dropout(double p, uint64_t seed) : p_(p), gen_(seed) {}
  Tensor forward(const Tensor& x) override;
  Generator& generator() { return gen_; }
  void set_p(double p) { p_ = p; }
  // Sets the Philox counter of the next mask, on the host and (once it exists) on the GPU.
  void set_offset(uint64_t offset);

 private:
  double p_;
  Generator gen_;
  // On the GPU the counter also lives in device memory (created at the first training forward,
  // outside any graph capture): a step replayed from a CUDA graph reads and advances it there.
  Tensor device_offset_;
};

// Children named "0", "1", ... as nn.Sequential; a child may be registered under another name.
class Sequential : public Layer {
 public:
  template <class L>
  L& add(std::unique_ptr<L> layer) {
    return add(std::to_string(layers_.size()), std::move(layer));
  }
  template <class L>
  L& add(const std::string& name, std::unique_ptr<L> layer) {
    L& ref = register_module(name, std::move(layer));
    layers_.push_back(&ref);
    return ref;
  }
  Tensor forward(const Tensor& x) override { return forward(x, 0, layers_.size()); }
  // Runs children [begin, end) only (e.g. a classifier up to its last layer).
  Tensor forward(const Tensor& x, size_t begin, size_t end);
  size_t size() const { return layers_.size(); }

 private:
  std::vector<Layer*> layers_;
};

}  // namespace sieve
