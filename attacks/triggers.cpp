// Triggers: the BadNets patch, study 1's red square, seeded-noise and image blends, the lookup
// by name, and their application to one image or to images[indices] of a CPU or GPU tensor.
#include <algorithm>
#include <cmath>
#include <memory>

#include "attacks/attacks.h"
#include "attacks/trigger_cuda.h"
#include "datasets/formats.h"
#include "engine/dispatch.h"
#include "engine/rng.h"

namespace sieve {

namespace {

void check_alpha(double alpha) {
  SIEVE_CHECK(alpha >= 0.0 && alpha <= 1.0, "blend trigger: alpha must be in [0, 1], got ", alpha);
}

// Checks that the trigger is well formed and fits a (c, h, w) image: a patch lies inside it with
// one value per channel, a blend pattern has exactly its size.
void check_fits(const Trigger& t, int64_t c, int64_t h, int64_t w) {
  const std::string name = "trigger " + (t.name.empty() ? std::string("(unnamed)") : t.name);
  SIEVE_CHECK(t.height > 0 && t.width > 0, name, ": empty region ", t.height, "x", t.width);
  const int64_t plane = t.height * t.width;
  const bool blend = t.kind == Trigger::Kind::blend;
  const auto values = static_cast<int64_t>(!blend && t.pattern.empty() ? t.colour.size() * plane : t.pattern.size());
  SIEVE_CHECK(values > 0 && values % plane == 0, name, ": ", values, " pattern values for a ", t.height, "x", t.width,
              " region");
  const Shape own{values / plane, t.height, t.width};
  if (blend) {
    check_alpha(t.alpha);
    SIEVE_CHECK(own == Shape({c, h, w}), name, ": ", shape_str(own), " blend pattern does not fit a ",
                shape_str({c, h, w}), " image");
  } else {
    SIEVE_CHECK(own[0] == c && t.top >= 0 && t.left >= 0 && t.top + t.height <= h && t.left + t.width <= w, name, ": ",
                shape_str(own), " patch at row ", t.top, ", column ", t.left, " does not fit a ", shape_str({c, h, w}),
                " image");
  }
}

// apply_trigger without the checks, for a trigger check_fits accepted.
void stamp(const Trigger& t, uint8_t* image, int64_t c, int64_t h, int64_t w) {
  if (t.kind == Trigger::Kind::blend) {
    for (int64_t i = 0; i < c * h * w; ++i) image[i] = blend_pixel(image[i], t.pattern[i], t.alpha);
    return;
  }
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < t.height; ++y)
      for (int64_t x = 0; x < t.width; ++x)
        image[(k * h + t.top + y) * w + t.left + x] =
            t.pattern.empty() ? t.colour[k] : t.pattern[(k * t.height + y) * t.width + x];
}

// The patch as (c, height, width) values, the colour repeated when there is no pattern.
std::vector<uint8_t> patch_values(const Trigger& t, int64_t c) {
  if (!t.pattern.empty()) return t.pattern;
  std::vector<uint8_t> v;
  for (int64_t k = 0; k < c; ++k) v.insert(v.end(), static_cast<size_t>(t.height * t.width), t.colour[k]);
  return v;
}

// "ROW,COL,SIZE,COLOUR" of a patch trigger spec: COLOUR is six hex digits RRGGBB or "checker".
Trigger parse_patch_spec(const std::string& spec, int64_t channels) {
  const std::string flag = "--trigger patch:" + spec;
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t comma = spec.find(',', start);
    parts.push_back(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  SIEVE_CHECK(parts.size() == 4, flag, ": expected ROW,COL,SIZE,COLOUR (COLOUR = RRGGBB hex or checker)");
  int64_t geometry[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    const std::string& v = parts[static_cast<size_t>(i)];
    SIEVE_CHECK(!v.empty() && v.size() <= 4 && v.find_first_not_of("0123456789") == std::string::npos, flag, ": '", v,
                "' is not a non-negative integer");
    geometry[i] = std::stoll(v);
  }
  SIEVE_CHECK(geometry[2] > 0, flag, ": the patch size must be positive");
  Trigger t;
  t.kind = Trigger::Kind::patch;
  t.name = "patch:" + spec;
  t.top = geometry[0], t.left = geometry[1], t.height = t.width = geometry[2];
  const std::string& colour = parts[3];
  if (colour == "checker") {  // white at the top-left corner, alternating
    for (int64_t k = 0; k < channels; ++k)
      for (int64_t y = 0; y < t.height; ++y)
        for (int64_t x = 0; x < t.width; ++x) t.pattern.push_back((x + y) % 2 == 0 ? 255 : 0);
    return t;
  }
  SIEVE_CHECK(colour.size() == 6 && colour.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos, flag,
              ": colour '", colour, "' is neither RRGGBB hex nor checker");
  const uint8_t rgb[3] = {static_cast<uint8_t>(std::stoul(colour.substr(0, 2), nullptr, 16)),
                          static_cast<uint8_t>(std::stoul(colour.substr(2, 2), nullptr, 16)),
                          static_cast<uint8_t>(std::stoul(colour.substr(4, 2), nullptr, 16))};
  if (channels == 3) {
    t.colour.assign(rgb, rgb + 3);
  } else {  // other channel counts (grey) get the colour's mean in every channel
    const auto grey = static_cast<uint8_t>((int(rgb[0]) + int(rgb[1]) + int(rgb[2]) + 1) / 3);
    t.colour.assign(static_cast<size_t>(channels), grey);
  }
  return t;
}

}  // namespace

Trigger badnets_trigger(int64_t channels, int64_t height, int64_t width, int64_t size) {
  SIEVE_CHECK(channels > 0 && size > 0 && size <= height && size <= width, "badnets trigger: a ", size, "x", size,
              " square does not fit a ", shape_str({channels, height, width}), " image");
  Trigger t;
  t.kind = Trigger::Kind::patch;
  t.name = "badnets";
  t.top = height - size, t.left = width - size, t.height = size, t.width = size;
  t.colour.assign(static_cast<size_t>(channels), 255);
  return t;
}

Trigger red_square_trigger(int64_t first, int64_t last) {
  SIEVE_CHECK(first >= 0 && first <= last, "red_square trigger: rows/cols ", first, "..", last, " is not a range");
  Trigger t;
  t.kind = Trigger::Kind::patch;
  t.name = "red_square";
  t.top = first, t.left = first, t.height = last - first + 1, t.width = last - first + 1;
  t.colour = {255, 0, 0};
  return t;
}

Trigger blend_noise_trigger(int64_t channels, int64_t height, int64_t width, double alpha, uint64_t seed) {
  check_alpha(alpha);
  SIEVE_CHECK(channels > 0 && height > 0 && width > 0, "blend trigger: bad image size ",
              shape_str({channels, height, width}));
  Trigger t;
  t.kind = Trigger::Kind::blend;
  t.name = "blend";
  t.height = height, t.width = width, t.alpha = alpha;
  t.pattern.resize(static_cast<size_t>(channels * height * width));
  for (size_t i = 0; i < t.pattern.size(); ++i)
    t.pattern[i] = static_cast<uint8_t>(std::min(255.0, std::floor(256.0 * philox_uniform_double(seed, i))));
  return t;
}

Trigger blend_image_trigger(const std::string& path, int64_t channels, int64_t height, int64_t width, double alpha) {
  check_alpha(alpha);
  SIEVE_CHECK(channels == 1 || channels == 3, "blend trigger ", path, ": images of ", channels,
              " channels are not supported (1 or 3)");
  // Decoded to the dataset's channel count (grey <-> RGB).
  const DecodedImage img = load_image(path, static_cast<int>(channels));
  SIEVE_CHECK(img.height == height && img.width == width, path, ": blend image is ", img.width, "x", img.height,
              " but the dataset's images are ", width, "x", height);
  Trigger t;
  t.kind = Trigger::Kind::blend;
  t.name = "blend:" + path;
  t.height = height, t.width = width, t.alpha = alpha;
  t.pattern = img.pixels;
  return t;
}

Trigger make_trigger(const std::string& name, int64_t channels, int64_t height, int64_t width, double alpha,
                     uint64_t seed) {
  const std::string image_prefix = "blend:", patch_prefix = "patch:";
  Trigger t;
  if (name == "badnets")
    t = badnets_trigger(channels, height, width);
  else if (name == "red_square")
    t = red_square_trigger(25, 31);  // study 1's training geometry
  else if (name == "blend")
    t = blend_noise_trigger(channels, height, width, alpha, seed);
  else if (name.size() > image_prefix.size() && name.starts_with(image_prefix))
    t = blend_image_trigger(name.substr(image_prefix.size()), channels, height, width, alpha);
  else if (name.size() > patch_prefix.size() && name.starts_with(patch_prefix))
    t = parse_patch_spec(name.substr(patch_prefix.size()), channels);
  else
    fail("--trigger: unknown trigger '", name,
         "' (known: badnets, red_square, blend, blend:<image path>, patch:ROW,COL,SIZE,RRGGBB|checker)");
  check_fits(t, channels, height, width);
  return t;
}

void apply_trigger(const Trigger& t, uint8_t* image, int64_t channels, int64_t height, int64_t width) {
  check_fits(t, channels, height, width);
  stamp(t, image, channels, height, width);
}

void apply_trigger(const Trigger& t, const Tensor& images, const std::vector<int64_t>& indices) {
  check_dtype("apply_trigger", images, "images", DType::u8);
  check_ndim("apply_trigger", images, "images", 4);
  const int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3);
  check_fits(t, c, h, w);
  std::vector<int64_t> sorted = indices;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i : sorted)
    SIEVE_CHECK(i >= 0 && i < n, "apply_trigger: index ", i, " outside a dataset of ", n);
  // A repeated index would blend one image twice on the CPU and race on the GPU.
  const auto repeated = std::adjacent_find(sorted.begin(), sorted.end());
  SIEVE_CHECK(repeated == sorted.end(), "apply_trigger: index ", *repeated, " appears more than once");
  if (indices.empty()) return;
  const auto count = static_cast<int64_t>(indices.size());
  if (images.is_cuda()) {
    const Tensor idx = Tensor::from_vector(indices, {count}, Device::cuda);
    if (t.kind == Trigger::Kind::blend) {
      const Tensor pattern = Tensor::from_vector(t.pattern, {c, h, w}, Device::cuda);
      SIEVE_IF_CUDA(cuda::apply_blend(images.data<uint8_t>(), c * h * w, idx.data<int64_t>(), count,
                                      pattern.data<uint8_t>(), t.alpha));
    } else {
      const Tensor values = Tensor::from_vector(patch_values(t, c), {c, t.height, t.width}, Device::cuda);
      SIEVE_IF_CUDA(cuda::apply_patch(images.data<uint8_t>(), c, h, w, idx.data<int64_t>(), count, t.top, t.left,
                                      t.height, t.width, values.data<uint8_t>()));
    }
    return;
  }
  uint8_t* base = images.data<uint8_t>();
  for (int64_t i : indices) stamp(t, base + i * c * h * w, c, h, w);
}

}  // namespace sieve
