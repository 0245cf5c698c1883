// Constructors behind make_model(), one per architecture file.
#pragma once
#include "models/model.h"

namespace sieve {

std::unique_ptr<Model> make_resnet18(const ModelConfig& cfg);
std::unique_ptr<Model> make_resnet20(const ModelConfig& cfg);
std::unique_ptr<Model> make_vgg16_bn(const ModelConfig& cfg);
std::unique_ptr<Model> make_mobilenet_v2(const ModelConfig& cfg);

}  // namespace sieve
