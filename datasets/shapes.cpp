// The "shapes" dataset: ten classes of geometric shapes drawn at random position, size, rotation
// and colour on cluttered backgrounds. Unlike the synthetic gratings (one colour and frequency
// per class, which a network separates perfectly), a class here is one shape in any colour, the
// backgrounds and distractors carry colours of every class, and neighbouring classes look alike
// at small sizes (disc and ellipse, square and hollow square, cross and star), so a small network
// stays clearly below perfect accuracy and its features vary within a class as natural images'
// do.
#include <algorithm>
#include <array>
#include <cmath>

#include "datasets/dataset.h"
#include "datasets/formats.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace sieve {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kSize = 32;

const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> names{"disc",   "square", "triangle",      "ring", "cross",
                                              "bar",    "ellipse", "hollow_square", "star", "two_dots"};
  return names;
}

// HSV (h in [0, 1)) to RGB in [0, 1].
std::array<double, 3> hsv(double h, double s, double v) {
  const double i = std::floor(h * 6), f = h * 6 - i, p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  switch (static_cast<int>(i) % 6) {
    case 0: return {v, t, p};
    case 1: return {q, v, p};
    case 2: return {p, v, t};
    case 3: return {p, q, v};
    case 4: return {t, p, v};
    default: return {v, p, q};
  }
}

double luma(const std::array<double, 3>& c) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]; }

// Whether the point (u, v), in the shape's own frame (centred, rotated, in units of its size),
// lies inside shape `c`; `aspect` shapes the ellipse and the bar.
bool inside(int64_t c, double u, double v, double aspect) {
  const double au = std::abs(u), av = std::abs(v), r = std::hypot(u, v);
  switch (c) {
    case 0: return r <= 1.0;                                            // disc
    case 1: return au <= 0.85 && av <= 0.85;                            // square
    case 2: return v >= -0.95 && v <= 0.65 && au <= 0.9 * (v + 0.95) / 1.6;  // triangle
    case 3: return r <= 1.0 && r >= 0.6;                                // ring
    case 4: return (au <= 0.28 && av <= 1.0) || (av <= 0.28 && au <= 1.0);  // cross
    case 5: return au <= 1.0 && av <= 1.0 / aspect;                     // bar
    case 6: return (u * u) + (v * aspect) * (v * aspect) <= 1.0;        // ellipse
    case 7: return au <= 0.9 && av <= 0.9 && (au >= 0.55 || av >= 0.55);  // hollow square
    case 8: {                                                           // five-pointed star
      const double a = std::atan2(v, u), k = std::fmod(a + 10 * kPi, 2 * kPi / 5) - kPi / 5;
      return r <= 0.45 + 0.55 * std::max(0.0, 1.0 - std::abs(k) / (kPi / 5) * 1.6);
    }
    default: return std::hypot(u - 0.55, v) <= 0.42 || std::hypot(u + 0.55, v) <= 0.42;  // two dots
  }
}

}  // namespace

ImageDataset make_shapes(int64_t n, uint64_t seed) {
  SIEVE_CHECK(n > 0, "shapes: need n > 0");
  ImageDataset ds;
  ds.name = "shapes";
  ds.channels = 3, ds.height = kSize, ds.width = kSize, ds.num_classes = 10;
  ds.class_names = shape_names();
  ds.images.resize(static_cast<size_t>(n * ds.image_bytes()));
  Generator gen(seed);
  std::vector<double> img(3 * kSize * kSize);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 10;
    ds.labels.push_back(c);
    // Background: a gradient between two random colours in a random direction, a faint texture
    // of two random waves, and pixel noise.
    const std::array<double, 3> b0 = hsv(gen.uniform(), 0.6 * gen.uniform(), 0.2 + 0.7 * gen.uniform());
    const std::array<double, 3> b1 = hsv(gen.uniform(), 0.6 * gen.uniform(), 0.2 + 0.7 * gen.uniform());
    const double ga = 2 * kPi * gen.uniform();
    double wave[2][4];
    for (auto& w : wave) w[0] = 2 * kPi * gen.uniform(), w[1] = 1 + 4 * gen.uniform(), w[2] = 2 * kPi * gen.uniform(),
                         w[3] = 0.06 * gen.uniform();
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) {
        const double t = 0.5 + ((x - 15.5) * std::cos(ga) + (y - 15.5) * std::sin(ga)) / 45.0;
        double tex = 0;
        for (const auto& w : wave)
          tex += w[3] * std::sin(w[1] * 2 * kPi * (x * std::cos(w[0]) + y * std::sin(w[0])) / kSize + w[2]);
        for (int k = 0; k < 3; ++k) img[(k * kSize + y) * kSize + x] = b0[k] + (b1[k] - b0[k]) * t + tex;
      }
    // Distractors: up to three small blobs of any colour.
    const int64_t blobs = static_cast<int64_t>(gen.below(4));
    for (int64_t d = 0; d < blobs; ++d) {
      const double cx = 32 * gen.uniform(), cy = 32 * gen.uniform(), rad = 1 + 2 * gen.uniform();
      const std::array<double, 3> col = hsv(gen.uniform(), 0.3 + 0.7 * gen.uniform(), 0.3 + 0.7 * gen.uniform());
      for (int y = 0; y < kSize; ++y)
        for (int x = 0; x < kSize; ++x)
          if (std::hypot(x + 0.5 - cx, y + 0.5 - cy) <= rad)
            for (int k = 0; k < 3; ++k) img[(k * kSize + y) * kSize + x] = col[k];
    }
    // The shape: any hue, its brightness set apart from the background's.
    const double size = 5.5 + 5.5 * gen.uniform(), rot = 2 * kPi * gen.uniform();
    const double cx = 16 + 7 * (2 * gen.uniform() - 1), cy = 16 + 7 * (2 * gen.uniform() - 1);
    const double aspect = c == 5 ? 3.0 + 2.0 * gen.uniform() : 1.3 + 0.9 * gen.uniform();
    std::array<double, 3> fg = hsv(gen.uniform(), 0.4 + 0.6 * gen.uniform(), 0.5 + 0.5 * gen.uniform());
    const double bg_luma = 0.5 * (luma(b0) + luma(b1));
    if (std::abs(luma(fg) - bg_luma) < 0.25)
      for (double& v : fg) v = bg_luma > 0.5 ? v * 0.3 : 1 - 0.3 * (1 - v);
    const double cr = std::cos(rot), sr = std::sin(rot);
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) {
        int hits = 0;  // 3x3 supersampling: anti-aliased edges
        for (int sy = 0; sy < 3; ++sy)
          for (int sx = 0; sx < 3; ++sx) {
            const double px = x + (sx + 0.5) / 3 - cx, py = y + (sy + 0.5) / 3 - cy;
            hits += inside(c, (cr * px + sr * py) / size, (-sr * px + cr * py) / size, aspect);
          }
        if (hits == 0) continue;
        const double a = hits / 9.0;
        for (int k = 0; k < 3; ++k) {
          double& p = img[(k * kSize + y) * kSize + x];
          p = (1 - a) * p + a * fg[k];
        }
      }
    uint8_t* out = ds.image(i);
    for (size_t p = 0; p < img.size(); ++p)  // pixel noise, rounded
      out[p] = static_cast<uint8_t>(std::clamp(255.0 * (img[p] + 0.05 * gen.normal()) + 0.5, 0.0, 255.0));
  }
  set_normalisation_from_images(ds);
  return ds;
}

}  // namespace sieve
