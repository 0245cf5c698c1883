// Poisoned-sample detection through the benchmark's interface: a defense is fitted on the
// poisoned model's penultimate features and the (possibly poisoned) labels, then scores every
// training sample (higher = more suspicious); the top round(removal_factor * fraction * N) go.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace sieve {

class Defense {
 public:
  virtual ~Defense() = default;
  virtual std::string name() const = 0;
  // features: (N, D) f32, labels: N training labels in [0, num_classes).
  virtual void fit(const Tensor& features, const std::vector<int64_t>& labels, int64_t num_classes,
                   double poison_fraction) = 0;
  // features (N, D), logits (N, C) of the same samples -> N scores, higher = more suspicious.
  virtual std::vector<double> score(const Tensor& features, const Tensor& logits) = 0;
};

// Names: the baselines confidence_filter, spectral_signature, activation_clustering,
// fine_pruning; the published detectors spectre, scan.
std::unique_ptr<Defense> make_defense(const std::string& name);
std::vector<std::string> defense_names();

// round(removal_factor * poison_fraction * n), clamped to [0, n].
int64_t removal_budget(double removal_factor, double poison_fraction, int64_t n);
// Indices of the `count` highest scores, highest first; ties go to the lower index. NaN scores
// rank lowest.
std::vector<int64_t> top_suspicious(const std::vector<double>& scores, int64_t count);

struct DetectionMetrics {
  int64_t budget = 0, removed_poisons = 0, poisons = 0;
  double recall = 0;     // removed poisons / poisons (1 when there are none)
  double precision = 0;  // removed poisons / budget
  double auroc = 0.5;    // of the scores against the poison mask (ties count half)
};
DetectionMetrics detection_metrics(const std::vector<double>& scores, const std::vector<uint8_t>& is_poison,
                                   int64_t budget);

}  // namespace sieve
