#include "layers/layers.h"

#include <cmath>

#include "engine/init.h"
#include "engine/ops/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/linear.h"
#include "engine/ops/pooling.h"

namespace sieve {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int kernel, Conv2dParams params,
               bool bias, Generator& gen)
    : params_(params) {
  SIEVE_CHECK(params.groups >= 1 && in_channels % params.groups == 0 && out_channels % params.groups == 0,
              "Conv2d: channels ", in_channels, " -> ", out_channels, " not divisible by groups ",
              params.groups);
  weight_ = &register_parameter("weight", Tensor::empty({out_channels, in_channels / params.groups, kernel, kernel}));
  kaiming_uniform_(*weight_, std::sqrt(5.0), gen);
  if (bias) {
    bias_ = &register_parameter("bias", Tensor::empty({out_channels}));
    default_bias_init_(*bias_, fan_in(weight_->shape()), gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, *weight_, bias_ ? *bias_ : Tensor(), params_);
}

BatchNorm2d::BatchNorm2d(int64_t channels, bool relu, double eps, double momentum, double relu_cap)
    : relu_(relu), eps_(eps), momentum_(momentum), relu_cap_(relu_cap) {
  weight_ = &register_parameter("weight", Tensor::full({channels}, 1.0));
  bias_ = &register_parameter("bias", Tensor::zeros({channels}));
  running_mean_ = &register_buffer("running_mean", Tensor::zeros({channels}));
  running_var_ = &register_buffer("running_var", Tensor::full({channels}, 1.0));
  num_batches_tracked_ = &register_buffer("num_batches_tracked", Tensor::zeros({}, DType::i64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (training()) num_batches_tracked_->increment_();  // the buffer is the counter, as in PyTorch
  return batchnorm2d(x, *weight_, *bias_, *running_mean_, *running_var_,
                     {training(), momentum_, eps_, relu_, relu_cap_});
}

Tensor BatchNorm2d::forward_add_relu(const Tensor& x, const Tensor& residual) {
  if (training()) num_batches_tracked_->increment_();
  return batchnorm2d(x, *weight_, *bias_, *running_mean_, *running_var_, {training(), momentum_, eps_, true},
                     residual);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen) {
  weight_ = &register_parameter("weight", Tensor::empty({out_features, in_features}));
  kaiming_uniform_(*weight_, std::sqrt(5.0), gen);
  if (bias) {
    bias_ = &register_parameter("bias", Tensor::empty({out_features}));
    default_bias_init_(*bias_, in_features, gen);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, *weight_, bias_ ? *bias_ : Tensor()); }

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor ReLU6::forward(const Tensor& x) { return relu6(x); }
Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_, stride_, padding_); }
Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel_, stride_, padding_); }
Tensor GlobalAvgPool::forward(const Tensor& x) { return global_avg_pool(x); }
Tensor Flatten::forward(const Tensor& x) { return flatten(x); }
Tensor Dropout::forward(const Tensor& x) {
  if (!x.is_cuda()) return dropout(x, p_, training(), gen_);
  if (training() && p_ > 0 && !device_offset_.defined())
    device_offset_ = Tensor::full({1}, static_cast<double>(gen_.offset()), DType::i64, Device::cuda);
  return dropout(x, p_, training(), gen_, device_offset_);
}

void Dropout::set_offset(uint64_t offset) {
  gen_.set_offset(offset);
  // Exact in a double up to 2^53: epoch e starts at e * 2^40, so for 8192 epochs.
  if (device_offset_.defined()) device_offset_.fill_(static_cast<double>(offset));
}

Tensor Sequential::forward(const Tensor& x, size_t begin, size_t end) {
  SIEVE_CHECK(begin <= end && end <= layers_.size(), "Sequential: layers [", begin, ", ", end,
              ") out of ", layers_.size());
  Tensor h = x;
  for (size_t i = begin; i < end; ++i) h = layers_[i]->forward(h);
  return h;
}

}  // namespace sieve
