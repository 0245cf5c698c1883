// The model zoo: parameter counts equal PyTorch's (tests/golden/make_fixtures.py prints them),
// state_dict names follow torchvision / the CIFAR reference code, forward shapes and features.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/autograd.h"
#include "models/model.h"
#include "tests/common/check.h"

using namespace sieve;

namespace {

bool has_key(Model& m, const std::string& key) {
  for (auto& [name, t] : m.named_state())
    if (name == key) return true;
  return false;
}

}  // namespace

TEST_CASE("models: parameter counts match PyTorch") {
  struct Expect {
    const char* name;
    int64_t classes, params;
  };
  for (const Expect& e : {Expect{"resnet20", 10, 269722}, Expect{"mobilenet_v2", 10, 2236682},
                          Expect{"resnet18", 10, 11173962}, Expect{"vgg16_bn", 100, 15299748}}) {
    ModelConfig cfg;
    cfg.num_classes = e.classes;
    CHECK_MESSAGE(make_model(e.name, cfg)->parameter_count() == e.params, e.name);
  }
  ModelConfig b;
  b.resnet20_option_a = false;
  CHECK(make_model("resnet20", b)->parameter_count() > 269722);  // option B adds 1x1 convs + BN
  CHECK_THROWS_WITH_AS(make_model("resnet21", {}), doctest::Contains("unknown model 'resnet21'"), Error);
}

TEST_CASE("models: state_dict names are PyTorch's") {
  ModelConfig cfg;
  auto r18 = make_model("resnet18", cfg);
  for (const char* k : {"conv1.weight", "bn1.running_var", "bn1.num_batches_tracked", "layer2.0.downsample.0.weight",
                        "layer2.0.downsample.1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"})
    CHECK_MESSAGE(has_key(*r18, k), k);
  auto r20 = make_model("resnet20", cfg);
  for (const char* k : {"layer3.2.conv2.weight", "linear.weight"}) CHECK_MESSAGE(has_key(*r20, k), k);
  CHECK_FALSE(has_key(*r20, "layer2.0.shortcut.0.weight"));  // option A has no parameters
  auto mb = make_model("mobilenet_v2", cfg);
  for (const char* k : {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.2.running_mean",
                        "features.2.conv.3.weight", "features.18.1.bias", "classifier.1.weight"})
    CHECK_MESSAGE(has_key(*mb, k), k);
  auto vgg = make_model("vgg16_bn", cfg);
  for (const char* k : {"features.0.weight", "features.1.running_mean", "features.41.weight", "classifier.1.weight",
                        "classifier.6.bias"})
    CHECK_MESSAGE(has_key(*vgg, k), k);
}

TEST_CASE("models: forward gives features and logits of the documented sizes") {
  for (const char* name : {"resnet20", "resnet18", "mobilenet_v2", "vgg16_bn"}) {
    ModelConfig cfg;
    cfg.num_classes = 7;
    auto m = make_model(name, cfg);
    m->eval();
    autograd::NoGradGuard no_grad;
    const ModelOutput out = m->forward(test::random_tensor({2, 3, 32, 32}, 5));
    CHECK_MESSAGE((out.features.shape() == Shape{2, m->feature_dim()}), name);
    CHECK_MESSAGE((out.logits.shape() == Shape{2, 7}), name);
  }
  ModelConfig one_channel;
  one_channel.in_channels = 1;
  auto grey = make_model("resnet20", one_channel);
  grey->eval();
  autograd::NoGradGuard no_grad;
  CHECK(grey->forward(test::random_tensor({1, 1, 28, 28}, 6)).logits.shape() == Shape{1, 10});
}

TEST_CASE("models: initialisation is seeded") {
  ModelConfig a, b;
  b.seed = 1;
  auto m1 = make_model("resnet20", a), m2 = make_model("resnet20", a), m3 = make_model("resnet20", b);
  CHECK(m1->state_dict().at("conv1.weight").to_double() == m2->state_dict().at("conv1.weight").to_double());
  CHECK(m1->state_dict().at("conv1.weight").to_double() != m3->state_dict().at("conv1.weight").to_double());
  // ResNet-18 (PROTOCOLS.md): fc weight ~ N(0, 0.01), bias 0.
  auto r18 = make_model("resnet18", a);
  const std::vector<double> fc = r18->state_dict().at("fc.weight").to_double();
  double sq = 0;
  for (double v : fc) sq += v * v;
  CHECK(std::sqrt(sq / static_cast<double>(fc.size())) == doctest::Approx(0.01).epsilon(0.05));
  for (double v : r18->state_dict().at("fc.bias").to_double()) CHECK(v == 0.0);
}

TEST_CASE("models: the classifier's dropout is a model option (0 switches it off)") {
  // In training mode two forwards of the same batch differ only through dropout's masks.
  const Tensor x = test::random_tensor({2, 3, 32, 32}, 8);
  for (const char* name : {"vgg16_bn", "mobilenet_v2"}) {
    for (const double p : {-1.0, 0.0}) {
      ModelConfig cfg;
      cfg.dropout = p;
      auto m = make_model(name, cfg);
      m->train();
      autograd::NoGradGuard no_grad;
      const std::vector<float> a = m->forward(x).logits.to_vector<float>(), b = m->forward(x).logits.to_vector<float>();
      CHECK_MESSAGE((a == b) == (p == 0.0), name << " dropout " << p);
    }
  }
  ModelConfig bad;
  bad.dropout = 1.0;
  CHECK_THROWS_WITH_AS(make_model("vgg16_bn", bad), doctest::Contains("dropout must be below 1"), Error);
}
