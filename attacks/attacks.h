// Backdoor attacks on u8 image datasets: triggers stamped or blended into images, poisoned
// training sets with their ground truth, and triggered test sets for the attack success rate.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "engine/tensor.h"

namespace sieve {

// A trigger in u8 image space (C, H, W), applied before any augmentation or normalisation.
//   patch: pixels in rows [top, top + height) and columns [left, left + width) become the
//          patch's values: `pattern` (C, height, width) when given, else `colour` per channel.
//   blend: x' = round((1 - alpha) * x + alpha * pattern), pattern (C, H, W) of the image size;
//          height and width are the image's (the makers set them).
struct Trigger {
  enum class Kind { patch, blend } kind = Kind::patch;
  std::string name;  // "badnets", "red_square", "blend", ... (for reports)
  int64_t top = 0, left = 0, height = 0, width = 0;
  std::vector<uint8_t> colour;   // one value per channel (patch without pattern)
  std::vector<uint8_t> pattern;  // patch: C*height*width; blend: C*H*W
  double alpha = 0.0;
};

// The 3x3 white square at the bottom-right of an image of the given size (BadNets, study 2).
Trigger badnets_trigger(int64_t channels, int64_t height, int64_t width, int64_t size = 3);
// Study 1's solid red square (255, 0, 0): rows/cols first..last inclusive (train 25..31, test 26..31).
Trigger red_square_trigger(int64_t first, int64_t last);
// Blend with a fixed seeded uniform-noise pattern (study 2 default: alpha 0.2).
Trigger blend_noise_trigger(int64_t channels, int64_t height, int64_t width, double alpha, uint64_t seed);
// Blend with an image file (png/jpg/bmp via stb_image), which must have the dataset's size.
Trigger blend_image_trigger(const std::string& path, int64_t channels, int64_t height, int64_t width, double alpha);
// By name: badnets | red_square | blend (noise) | blend:<image path> | patch:ROW,COL,SIZE,COLOUR, a
// SIZE x SIZE square at (ROW, COL) of one colour (RRGGBB hex; grey images get its mean) or a
// black-and-white checkerboard (COLOUR = checker, white at its top-left).
Trigger make_trigger(const std::string& name, int64_t channels, int64_t height, int64_t width, double alpha,
                     uint64_t seed);

// Applies the trigger to one image (C, H, W) in place; checks the trigger fits the image.
void apply_trigger(const Trigger& t, uint8_t* image, int64_t channels, int64_t height, int64_t width);
// Applies the trigger in place to images[indices] of a (N, C, H, W) u8 tensor on the CPU or GPU.
void apply_trigger(const Trigger& t, const Tensor& images, const std::vector<int64_t>& indices);

// How the poison indices are drawn from the candidates (every index, or the non-target ones):
//   sieve: a partial Fisher-Yates shuffle on sieve's generator;
//   python: CPython's `random.seed(seed); random.sample(candidates, n_poison)` (engine/py_random.h),
//   study 1's own draw, which reproduces its exact poison indices.
enum class PoisonDraw { sieve, python };
const char* poison_draw_name(PoisonDraw draw);  // "sieve" | "python"

struct PoisonConfig {
  double fraction = 0.05;        // n_poison = floor(fraction * N)
  int64_t target = 0;
  bool from_all_classes = false; // study 1: all classes; study 2: non-target classes only
  uint64_t seed = 0;
  PoisonDraw draw = PoisonDraw::sieve;
};

struct PoisonedSet {
  ImageDataset data;                    // triggered images, labels relabelled to the target
  std::vector<uint8_t> is_poison;       // per index: 1 for a poison
  std::vector<int64_t> poison_indices;  // sorted
  std::vector<int64_t> original_labels; // clean labels of every index
};

// Draws floor(fraction * N) distinct indices uniformly (seeded, as cfg.draw says; from the
// non-target classes unless from_all_classes), stamps the trigger and relabels them to the target.
PoisonedSet poison_dataset(const ImageDataset& clean, const Trigger& trigger, const PoisonConfig& cfg);

// Every test image with the trigger and label := target; non-target images only unless
// include_target (study 1's ASR over all 10,000 images). Accuracy on it is the attack success rate.
ImageDataset triggered_test_set(const ImageDataset& test, const Trigger& trigger, int64_t target, bool include_target);

// Fraction of triggered images classified as the target: predictions[i] is the model's class for
// triggered test image i, whose clean label was original_labels[i]. Images of the target class
// count only when include_target (study 1's seed ASR over all images; the standard ASR leaves
// them out).
double attack_success_rate(const std::vector<int64_t>& predictions, const std::vector<int64_t>& original_labels,
                           int64_t target, bool include_target);

}  // namespace sieve
