// A feature dump: what `sieve defend` writes after training a victim and what every defense
// scores (also from dumps other people made, with --offline). A safetensors file holding
//   features (N, D) float, logits (N, C) float, labels (N) integer in [0, num_classes),
//   is_poison (N) 0/1, original_labels (N) optional;
//   metadata num_classes, poison_fraction (the true one) and optionally assumed_fraction (the
//   one the defenses are told).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/safetensors.h"

namespace sieve {

struct FeatureDump {
  Tensor features, logits;  // f32 on the CPU
  std::vector<int64_t> labels;
  std::vector<uint8_t> is_poison;
  int64_t num_classes = 0;
  double poison_fraction = 0;  // the fraction the defenses are told (assumed_fraction, else the true one)
};

// Checks every tensor and metadata field; errors are one line starting with `name`.
FeatureDump read_feature_dump(const SafetensorsFile& file, const std::string& name);
FeatureDump load_feature_dump(const std::string& path);

}  // namespace sieve
