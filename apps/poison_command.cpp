// `sieve poison`: CLI options, then poisoning, the preview grid and the summary line.
#include "apps/poison_command.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "studies/plot.h"
#include "attacks/attacks.h"

namespace sieve {

CLI::App* add_poison_command(CLI::App& app, PoisonOptions& o) {
  CLI::App* c = app.add_subcommand("poison", "poison a training set and preview the triggered images (PNG)");
  c->add_option("--dataset", o.dataset, "cifar10 | cifar100 | fashion_mnist | fashion_mnist_28 | image_folder | synthetic | shapes")
      ->capture_default_str();
  c->add_option("--data", o.data, "dataset folder in its official format (see README)");
  c->add_option("--trigger", o.trigger, "badnets | red_square | blend | blend:<image path> | patch:ROW,COL,SIZE,RRGGBB|checker")->capture_default_str();
  c->add_option("--alpha", o.alpha, "blend weight of the trigger pattern")->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--target", o.target, "target class of the backdoor")->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->capture_default_str();
  c->add_option("--poison-fraction", o.fraction, "fraction of the training set poisoned")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--seed", o.seed, "seed of the poison selection and of the blend noise")->capture_default_str();
  c->add_flag("--all-classes", o.all_classes, "draw poisons from every class, the target class included");
  c->add_option("--preview", o.preview, "PNG of clean (top row) and poisoned (bottom row) images")->required();
  c->add_option("--count", o.count, "poisoned images shown in the preview")->check(CLI::Range(int64_t(1), int64_t(64)))
      ->capture_default_str();
  return c;
}

void run_poison(const PoisonOptions& o) {
  SIEVE_CHECK(is_generated(o.dataset) || !o.data.empty(), "--data: the folder of ", o.dataset,
              " is needed (see README, 'Real datasets')");
  const ImageDataset clean = load_dataset(o.dataset, o.data, true);
  const Trigger trigger = make_trigger(o.trigger, clean.channels, clean.height, clean.width, o.alpha, o.seed);
  const PoisonedSet p = poison_dataset(clean, trigger, {o.fraction, o.target, o.all_classes, o.seed});
  const auto poisons = static_cast<int64_t>(p.poison_indices.size());
  SIEVE_CHECK(poisons > 0, "--poison-fraction ", o.fraction, " poisons none of the ", clean.size(),
              " training images: nothing to preview");

  const int64_t shown = std::min(o.count, poisons);
  std::vector<const uint8_t*> grid;
  std::vector<std::string> captions;
  for (int64_t j = 0; j < shown; ++j) {
    const int64_t i = p.poison_indices[j];
    grid.push_back(clean.image(i));
    captions.push_back(cat(p.original_labels[i], " to ", o.target));
  }
  for (int64_t j = 0; j < shown; ++j) grid.push_back(p.data.image(p.poison_indices[j]));
  write_image_grid(o.preview, grid, clean.channels, clean.height, clean.width, shown, 4, captions);

  std::vector<int64_t> per_class(static_cast<size_t>(clean.num_classes), 0);
  for (int64_t i : p.poison_indices) ++per_class[p.original_labels[i]];
  std::ostringstream breakdown;
  for (int64_t c = 0; c < clean.num_classes; ++c)
    if (per_class[c] > 0) breakdown << ' ' << c << ':' << per_class[c];
  std::printf("sieve poison: %ld of %ld %s training images poisoned with %s (target %ld, from %s); by original class"
              "%s; preview of %ld (top clean, bottom poisoned): %s\n",
              long(poisons), long(clean.size()), clean.name.c_str(), trigger.name.c_str(), long(o.target),
              o.all_classes ? "all classes" : "non-target classes", breakdown.str().c_str(), long(shown),
              o.preview.c_str());
}

}  // namespace sieve
