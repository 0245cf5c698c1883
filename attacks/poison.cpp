#include <algorithm>

#include "attacks/attacks.h"
#include "engine/error.h"
#include "engine/py_random.h"
#include "engine/rng.h"

namespace sieve {

const char* poison_draw_name(PoisonDraw draw) { return draw == PoisonDraw::python ? "python" : "sieve"; }

PoisonedSet poison_dataset(const ImageDataset& clean, const Trigger& trigger, const PoisonConfig& cfg) {
  SIEVE_CHECK(cfg.fraction >= 0.0 && cfg.fraction <= 1.0, "--poison-fraction must be in [0, 1], got ", cfg.fraction);
  SIEVE_CHECK(cfg.target >= 0 && cfg.target < clean.num_classes, "--target ", cfg.target, " is not a class of ",
              clean.name, " (0..", clean.num_classes - 1, ")");
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < clean.size(); ++i)
    if (cfg.from_all_classes || clean.labels[i] != cfg.target) candidates.push_back(i);
  const auto count = static_cast<int64_t>(cfg.fraction * static_cast<double>(clean.size()));
  SIEVE_CHECK(count <= static_cast<int64_t>(candidates.size()), "poisoning: ", count, " poisons asked for but only ",
              candidates.size(), " candidate images");
  PoisonedSet p;
  if (cfg.draw == PoisonDraw::python) {
    for (int64_t j : PyRandom(cfg.seed).sample(static_cast<int64_t>(candidates.size()), count))
      p.poison_indices.push_back(candidates[j]);
  } else {
    // Partial Fisher-Yates: the first `count` candidates after the shuffle are a uniform sample.
    Generator gen(cfg.seed ^ 0x706f69736f6eull);
    for (int64_t i = 0; i < count; ++i)
      std::swap(candidates[i], candidates[i + gen.below(candidates.size() - i)]);
    p.poison_indices.assign(candidates.begin(), candidates.begin() + count);
  }
  p.data = clean;
  p.original_labels = clean.labels;
  p.is_poison.assign(static_cast<size_t>(clean.size()), 0);
  std::sort(p.poison_indices.begin(), p.poison_indices.end());
  for (int64_t i : p.poison_indices) {
    apply_trigger(trigger, p.data.image(i), clean.channels, clean.height, clean.width);
    p.data.labels[i] = cfg.target;
    p.is_poison[i] = 1;
  }
  return p;
}

ImageDataset triggered_test_set(const ImageDataset& test, const Trigger& trigger, int64_t target, bool include_target) {
  SIEVE_CHECK(target >= 0 && target < test.num_classes, "--target ", target, " is not a class of ", test.name);
  ImageDataset out = test;
  out.images.clear();
  out.labels.clear();
  for (int64_t i = 0; i < test.size(); ++i) {
    if (!include_target && test.labels[i] == target) continue;
    out.images.insert(out.images.end(), test.image(i), test.image(i) + test.image_bytes());
    apply_trigger(trigger, out.images.data() + (out.size()) * test.image_bytes(), test.channels, test.height, test.width);
    out.labels.push_back(target);
  }
  return out;
}

double attack_success_rate(const std::vector<int64_t>& predictions, const std::vector<int64_t>& original_labels,
                           int64_t target, bool include_target) {
  SIEVE_CHECK(predictions.size() == original_labels.size(), "attack success rate: ", predictions.size(),
              " predictions for ", original_labels.size(), " images");
  int64_t hits = 0, counted = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    if (!include_target && original_labels[i] == target) continue;
    ++counted;
    hits += predictions[i] == target;
  }
  return counted ? static_cast<double>(hits) / static_cast<double>(counted) : 0.0;
}

}  // namespace sieve
