// Trains a ResNet-20 on a poisoned training set (the synthetic dataset, a red-square trigger on
// 5% of the images, relabelled to class 0), extracts its penultimate features and scores every
// sample with a defense written here, beside sieve's spectral signature, through the benchmark's
// interface (fit on the features and the poisoned labels, one suspicion score per sample).
//
//   own_defense [train images = 2000] [epochs = 3]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "attacks/attacks.h"
#include "datasets/dataset.h"
#include "defense/defense.h"
#include "engine/error.h"
#include "models/model.h"
#include "training/trainer.h"

namespace {

// Distance to the class centroid in units of the class's mean distance: a sample far from the
// other samples of its (possibly poisoned) label is suspicious.
class CentroidDistance : public sieve::Defense {
 public:
  std::string name() const override { return "centroid_distance"; }

  void fit(const sieve::Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
           double /*poison_fraction*/) override {
    const std::vector<float> x = features.to(sieve::Device::cpu).to_vector<float>();
    const int64_t n = features.dim(0);
    dims_ = features.dim(1);
    centroid_.assign(static_cast<size_t>(num_classes * dims_), 0.0);
    spread_.assign(static_cast<size_t>(num_classes), 0.0);
    std::vector<int64_t> count(static_cast<size_t>(num_classes), 0);
    for (int64_t i = 0; i < n; ++i) {
      ++count[labels[i]];
      for (int64_t d = 0; d < dims_; ++d) centroid_[labels[i] * dims_ + d] += x[i * dims_ + d];
    }
    for (int64_t c = 0; c < num_classes; ++c)
      for (int64_t d = 0; d < dims_; ++d) centroid_[c * dims_ + d] /= std::max<int64_t>(count[c], 1);
    labels_ = labels;
    distance_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t d = 0; d < dims_; ++d) {
        const double diff = x[i * dims_ + d] - centroid_[labels[i] * dims_ + d];
        s += diff * diff;
      }
      distance_[i] = std::sqrt(s);
      spread_[labels[i]] += distance_[i] / std::max<int64_t>(count[labels[i]], 1);
    }
  }

  std::vector<double> score(const sieve::Tensor& features, const sieve::Tensor& /*logits*/) override {
    SIEVE_CHECK(features.dim(0) == static_cast<int64_t>(distance_.size()), "score: fit on other samples");
    std::vector<double> s(distance_.size());
    for (size_t i = 0; i < s.size(); ++i) s[i] = distance_[i] / std::max(spread_[labels_[i]], 1e-12);
    return s;
  }

 private:
  int64_t dims_ = 0;
  std::vector<double> centroid_, spread_, distance_;
  std::vector<int64_t> labels_;
};

void report(const char* name, const std::vector<double>& scores, const sieve::PoisonedSet& p, double fraction) {
  const int64_t n = static_cast<int64_t>(scores.size());
  const sieve::DetectionMetrics m =
      sieve::detection_metrics(scores, p.is_poison, sieve::removal_budget(1.0, fraction, n));
  std::printf("%-20s removes %4ld: %4ld of %4ld poisons, recall %.3f, precision %.3f, AUROC %.3f\n", name,
              long(m.budget), long(m.removed_poisons), long(m.poisons), m.recall, m.precision, m.auroc);
}

}  // namespace

int main(int argc, char** argv) try {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2000;
  const int64_t epochs = argc > 2 ? std::atoll(argv[2]) : 3;
  SIEVE_CHECK(n >= 100 && epochs >= 1, "usage: own_defense [train images >= 100] [epochs >= 1]");
  const double fraction = 0.05;

  // The data: synthetic 32x32 RGB images in 10 classes, 5% of them poisoned.
  const sieve::ImageDataset clean = sieve::make_synthetic(n, 10, /*seed=*/1);
  const sieve::PoisonedSet poisoned =
      sieve::poison_dataset(clean, sieve::red_square_trigger(25, 31), {fraction, /*target=*/0, false, /*seed=*/1});

  // The victim: ResNet-20 trained on the poisoned set with sieve's training loop.
  sieve::ModelConfig mc;
  mc.num_classes = clean.num_classes, mc.in_channels = clean.channels, mc.seed = 1;
  auto model = sieve::make_model("resnet20", mc);
  const sieve::DeviceDataset train = sieve::to_device(poisoned.data, sieve::Device::cpu);
  sieve::TrainConfig tc;
  tc.epochs = epochs, tc.batch_size = 64, tc.lr = 0.05, tc.seed = 1;
  sieve::Trainer trainer(*model, train, nullptr, tc);
  trainer.fit();

  // Its penultimate features and logits, scored by this file's defense and by a built-in one.
  const sieve::Trainer::Extraction e = trainer.extract(train);
  CentroidDistance own;
  own.fit(e.features, poisoned.data.labels, clean.num_classes, fraction);
  report(own.name().c_str(), own.score(e.features, e.logits), poisoned, fraction);
  auto builtin = sieve::make_defense("spectral_signature");
  builtin->fit(e.features, poisoned.data.labels, clean.num_classes, fraction);
  report(builtin->name().c_str(), builtin->score(e.features, e.logits), poisoned, fraction);
  return 0;
} catch (const std::exception& ex) {
  std::fprintf(stderr, "own_defense: %s\n", ex.what());
  return 1;
}
