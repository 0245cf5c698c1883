// Triggers pixel by pixel against the definitions, blend arithmetic on hand-computed values,
// poisoning and triggered test sets against their contracts, and the `sieve poison` preview.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "studies/plot.h"
#include "apps/poison_command.h"
#include "attacks/attacks.h"
#include "datasets/formats.h"
#include "attacks/trigger_cuda.h"
#include "engine/py_random.h"
#include "engine/rng.h"
#include "tests/common/check.h"
#include "tests/common/images.h"

using namespace sieve;

namespace {

// Values in 1..254, so writing 0 or 255 always changes a pixel.
std::vector<uint8_t> random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  std::vector<uint8_t> v(static_cast<size_t>(n * c * h * w));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(1 + std::floor(254.0 * philox_uniform_double(seed, i)));
  return v;
}

// Every pixel of `out`: the colour inside rows/cols first..last inclusive, `in` elsewhere.
void expect_square(const std::vector<uint8_t>& in, const std::vector<uint8_t>& out, int64_t c, int64_t h, int64_t w,
                   int64_t first, int64_t last, const std::vector<uint8_t>& colour) {
  int64_t wrong = 0;
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const size_t i = static_cast<size_t>((k * h + y) * w + x);
        const bool inside = y >= first && y <= last && x >= first && x <= last;
        wrong += out[i] != (inside ? colour[k] : in[i]);
      }
  CHECK(wrong == 0);
}

std::vector<uint8_t> triggered(const Trigger& t, std::vector<uint8_t> image, int64_t c, int64_t h, int64_t w) {
  apply_trigger(t, image.data(), c, h, w);
  return image;
}

// A blend trigger over a (1, 1, n) image with the given pattern, for arithmetic checks.
Trigger row_blend(const std::vector<uint8_t>& pattern, double alpha) {
  Trigger t;
  t.kind = Trigger::Kind::blend;
  t.name = "row";
  t.height = 1, t.width = static_cast<int64_t>(pattern.size());
  t.pattern = pattern;
  t.alpha = alpha;
  return t;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("attacks: badnets is a white square at the bottom-right, nothing else changes") {
  const std::vector<uint8_t> rgb = random_images(1, 3, 32, 32, 1);
  const Trigger t = badnets_trigger(3, 32, 32);
  CHECK(t.kind == Trigger::Kind::patch);
  CHECK(t.name == "badnets");
  expect_square(rgb, triggered(t, rgb, 3, 32, 32), 3, 32, 32, 29, 31, {255, 255, 255});

  const std::vector<uint8_t> grey = random_images(1, 1, 28, 28, 2);
  expect_square(grey, triggered(badnets_trigger(1, 28, 28), grey, 1, 28, 28), 1, 28, 28, 25, 27, {255});
  // A 5x5 square on a non-square image: rows 7..11, columns 15..19.
  const std::vector<uint8_t> wide = random_images(1, 1, 12, 20, 3);
  const std::vector<uint8_t> out = triggered(badnets_trigger(1, 12, 20, 5), wide, 1, 12, 20);
  int64_t wrong = 0;
  for (int64_t y = 0; y < 12; ++y)
    for (int64_t x = 0; x < 20; ++x) wrong += out[y * 20 + x] != (y >= 7 && x >= 15 ? 255 : wide[y * 20 + x]);
  CHECK(wrong == 0);
}

TEST_CASE("attacks: red square covers rows/cols first..last in (255, 0, 0)") {
  const std::vector<uint8_t> img = random_images(1, 3, 32, 32, 4);
  const Trigger train = red_square_trigger(25, 31);
  CHECK(train.height == 7);
  CHECK(train.width == 7);
  expect_square(img, triggered(train, img, 3, 32, 32), 3, 32, 32, 25, 31, {255, 0, 0});
  const Trigger test = red_square_trigger(26, 31);
  CHECK(test.height == 6);
  expect_square(img, triggered(test, img, 3, 32, 32), 3, 32, 32, 26, 31, {255, 0, 0});
  CHECK_THROWS_WITH_AS(red_square_trigger(31, 25), doctest::Contains("red_square trigger: rows/cols 31..25 is not a range"),
                       Error);
}

TEST_CASE("attacks: blend rounds halves up and matches the double-precision definition") {
  struct Case {
    double alpha;
    uint8_t x, p, expected;
  };
  // Hand-computed: (1 - a) x + a p, then floor(v + 0.5).
  const std::vector<Case> cases{
      {0.5, 0, 1, 1},      {0.5, 2, 3, 3},     {0.5, 254, 255, 255}, {0.5, 255, 255, 255}, {0.5, 7, 7, 7},
      {0.25, 0, 2, 1},     {0.25, 10, 20, 13}, {0.25, 1, 0, 1},      {0.2, 100, 200, 120}, {0.2, 0, 255, 51},
      {0.2, 255, 0, 204},  {0.2, 0, 2, 0},     {0.2, 1, 0, 1},       {0.0, 37, 200, 37},   {1.0, 37, 200, 200},
      {1.0, 255, 255, 255}};
  for (const Case& c : cases) {
    CAPTURE(c.alpha);
    CAPTURE(int(c.x));
    CAPTURE(int(c.p));
    CHECK(int(blend_pixel(c.x, c.p, c.alpha)) == int(c.expected));
    std::vector<uint8_t> img{c.x};
    apply_trigger(row_blend({c.p}, c.alpha), img.data(), 1, 1, 1);
    CHECK(int(img[0]) == int(c.expected));
  }
  // Every input byte against the formula; the result stays between x and p (never clamps wrongly).
  for (double alpha : {0.2, 0.37, 0.999}) {
    int64_t wrong = 0;
    for (int x = 0; x < 256; ++x)
      for (int p : {0, 1, 128, 254, 255}) {
        const double v = (1.0 - alpha) * x + alpha * p;
        const int expected = static_cast<int>(std::floor(v + 0.5));
        const int got = blend_pixel(static_cast<uint8_t>(x), static_cast<uint8_t>(p), alpha);
        wrong += got != expected || got < std::min(x, p) || got > std::max(x, p);
      }
    CHECK(wrong == 0);
  }
  std::vector<uint8_t> img{1, 2};
  CHECK_THROWS_WITH_AS(apply_trigger(row_blend({3, 4}, 1.5), img.data(), 1, 1, 2),
                       doctest::Contains("alpha must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(blend_noise_trigger(3, 32, 32, -0.1, 0), doctest::Contains("alpha must be in [0, 1]"), Error);
}

TEST_CASE("attacks: blend noise pattern is floor(256 u) per element and fixed by the seed") {
  const Trigger t = blend_noise_trigger(3, 32, 32, 0.2, 7);
  CHECK(t.kind == Trigger::Kind::blend);
  CHECK(t.name == "blend");
  CHECK(t.alpha == 0.2);
  REQUIRE(t.pattern.size() == 3 * 32 * 32);
  int64_t wrong = 0;
  for (size_t i = 0; i < t.pattern.size(); ++i)
    wrong += t.pattern[i] != std::min(255.0, std::floor(256.0 * philox_uniform_double(7, i)));
  CHECK(wrong == 0);
  CHECK(*std::min_element(t.pattern.begin(), t.pattern.end()) < 5);
  CHECK(*std::max_element(t.pattern.begin(), t.pattern.end()) > 250);
  CHECK(blend_noise_trigger(3, 32, 32, 0.5, 7).pattern == t.pattern);
  CHECK(blend_noise_trigger(3, 32, 32, 0.2, 8).pattern != t.pattern);
  CHECK(blend_noise_trigger(1, 28, 28, 0.2, 7).pattern.size() == 28 * 28);

  // The whole image is blended, pixel by pixel.
  const std::vector<uint8_t> img = random_images(1, 3, 32, 32, 5);
  const std::vector<uint8_t> out = triggered(t, img, 3, 32, 32);
  wrong = 0;
  for (size_t i = 0; i < img.size(); ++i) wrong += out[i] != blend_pixel(img[i], t.pattern[i], 0.2);
  CHECK(wrong == 0);
  CHECK(out != img);
}

TEST_CASE("attacks: make_trigger by name, and unknown names") {
  const Trigger b = make_trigger("badnets", 3, 32, 32, 0.2, 0);
  CHECK(b.name == "badnets");
  CHECK(b.top == 29);
  CHECK(b.height == 3);
  const Trigger r = make_trigger("red_square", 3, 32, 32, 0.2, 0);
  CHECK(r.name == "red_square");
  CHECK(r.top == 25);
  CHECK(r.height == 7);
  CHECK(r.colour == std::vector<uint8_t>{255, 0, 0});
  const Trigger n = make_trigger("blend", 3, 32, 32, 0.3, 11);
  CHECK(n.pattern == blend_noise_trigger(3, 32, 32, 0.3, 11).pattern);
  CHECK(n.alpha == 0.3);
  for (const char* bad : {"patch", "blend:", "BadNets", ""})
    CHECK_THROWS_WITH_AS(make_trigger(bad, 3, 32, 32, 0.2, 0),
                         doctest::Contains("(known: badnets, red_square, blend, blend:<image path>, patch:"), Error);
  CHECK_THROWS_WITH_AS(make_trigger("patch", 3, 32, 32, 0.2, 0), doctest::Contains("--trigger: unknown trigger 'patch'"),
                       Error);
  // Study 1's red square needs an RGB image of at least 32x32.
  CHECK_THROWS_WITH_AS(make_trigger("red_square", 1, 28, 28, 0.2, 0),
                       doctest::Contains("trigger red_square: (3, 7, 7) patch at row 25, column 25 does not fit a (1, 28, 28) image"),
                       Error);
  CHECK_THROWS_WITH_AS(make_trigger("blend", 3, 32, 32, 2.0, 0), doctest::Contains("alpha must be in [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(make_trigger("blend:/nonexistent-sieve/trigger.png", 3, 32, 32, 0.2, 0),
                       doctest::Contains("/nonexistent-sieve/trigger.png: cannot open"), Error);
}

TEST_CASE("attacks: patch:ROW,COL,SIZE,COLOUR triggers (held-out shapes, positions and colours)") {
  const Trigger g = make_trigger("patch:2,5,4,00ff80", 3, 32, 32, 0.2, 0);
  CHECK(g.kind == Trigger::Kind::patch);
  CHECK(g.name == "patch:2,5,4,00ff80");
  CHECK(g.top == 2);
  CHECK(g.left == 5);
  CHECK(g.height == 4);
  CHECK(g.width == 4);
  CHECK(g.colour == std::vector<uint8_t>{0, 255, 128});
  std::vector<uint8_t> img(3 * 32 * 32, 7);
  apply_trigger(g, img.data(), 3, 32, 32);
  CHECK(img[(0 * 32 + 2) * 32 + 5] == 0);      // red plane, top-left of the patch
  CHECK(img[(1 * 32 + 5) * 32 + 8] == 255);    // green plane, bottom-right of the patch
  CHECK(img[(2 * 32 + 2) * 32 + 5] == 128);    // blue plane
  CHECK(img[(1 * 32 + 6) * 32 + 8] == 7);      // just below the patch
  CHECK(img[(1 * 32 + 2) * 32 + 9] == 7);      // just right of it
  const Trigger c = make_trigger("patch:0,0,3,checker", 1, 28, 28, 0.2, 0);
  CHECK(c.pattern == std::vector<uint8_t>{255, 0, 255, 0, 255, 0, 255, 0, 255});
  CHECK(make_trigger("patch:1,1,2,306090", 1, 28, 28, 0.2, 0).colour == std::vector<uint8_t>{96});
  for (const char* bad : {"patch:1,2,3", "patch:1,2,3,ff0000,9", "patch:a,2,3,ff0000", "patch:-1,2,3,ff0000",
                          "patch:1,2,0,ff0000", "patch:1,2,3,red", "patch:1,2,3,ff00"})
    CHECK_THROWS_WITH_AS(make_trigger(bad, 3, 32, 32, 0.2, 0),
                         doctest::Contains((std::string("--trigger ") + bad).c_str()), Error);
  CHECK_THROWS_WITH_AS(make_trigger("patch:30,30,4,ffffff", 3, 32, 32, 0.2, 0),
                       doctest::Contains("patch at row 30, column 30 does not fit a (3, 32, 32) image"), Error);
}

TEST_CASE("attacks: a trigger that does not fit the image is refused, naming both sizes") {
  std::vector<uint8_t> small = random_images(1, 3, 28, 28, 6);
  CHECK_THROWS_WITH_AS(apply_trigger(badnets_trigger(3, 32, 32), small.data(), 3, 28, 28),
                       doctest::Contains("trigger badnets: (3, 3, 3) patch at row 29, column 29 does not fit a (3, 28, 28) image"),
                       Error);
  CHECK_THROWS_WITH_AS(apply_trigger(badnets_trigger(1, 28, 28), small.data(), 3, 28, 28),
                       doctest::Contains("(1, 3, 3) patch at row 25, column 25 does not fit a (3, 28, 28) image"), Error);
  CHECK_THROWS_WITH_AS(apply_trigger(blend_noise_trigger(3, 32, 32, 0.2, 0), small.data(), 3, 28, 28),
                       doctest::Contains("trigger blend: (3, 32, 32) blend pattern does not fit a (3, 28, 28) image"), Error);
  CHECK_THROWS_WITH_AS(badnets_trigger(3, 2, 2), doctest::Contains("badnets trigger: a 3x3 square does not fit a (3, 2, 2) image"),
                       Error);
  CHECK(small == random_images(1, 3, 28, 28, 6));  // refused triggers write nothing
}

TEST_CASE("attacks: apply_trigger on a CPU tensor equals the per-image function on the indexed images") {
  const int64_t n = 6;
  const std::vector<uint8_t> clean = random_images(n, 3, 32, 32, 9);
  const std::vector<int64_t> indices{4, 0, 2};
  for (const Trigger& t : {badnets_trigger(3, 32, 32), red_square_trigger(26, 31), blend_noise_trigger(3, 32, 32, 0.2, 3)}) {
    CAPTURE(t.name);
    const Tensor images = Tensor::from_vector(clean, {n, 3, 32, 32});
    apply_trigger(t, images, indices);
    std::vector<uint8_t> expected = clean;
    for (int64_t i : indices) apply_trigger(t, expected.data() + i * 3072, 3, 32, 32);
    CHECK(images.to_vector<uint8_t>() == expected);
  }
  const Tensor images = Tensor::from_vector(clean, {n, 3, 32, 32});
  const Trigger t = badnets_trigger(3, 32, 32);
  apply_trigger(t, images, {});
  CHECK(images.to_vector<uint8_t>() == clean);
  CHECK_THROWS_WITH_AS(apply_trigger(t, images, {1, 6}), doctest::Contains("apply_trigger: index 6 outside a dataset of 6"),
                       Error);
  CHECK_THROWS_WITH_AS(apply_trigger(t, images, {-1}), doctest::Contains("index -1 outside"), Error);
  CHECK_THROWS_WITH_AS(apply_trigger(t, images, {3, 1, 3}), doctest::Contains("apply_trigger: index 3 appears more than once"),
                       Error);
  CHECK_THROWS_WITH_AS(apply_trigger(t, Tensor::zeros({2, 3, 32, 32}), {0}), doctest::Contains("apply_trigger"), Error);
  CHECK_THROWS_WITH_AS(apply_trigger(t, Tensor::from_vector(clean, {n, 3, 1024}), {0}), doctest::Contains("apply_trigger"),
                       Error);
  CHECK_THROWS_WITH_AS(apply_trigger(badnets_trigger(3, 40, 40), images, {0}), doctest::Contains("does not fit a (3, 32, 32) image"),
                       Error);
  CHECK(images.to_vector<uint8_t>() == clean);
}

TEST_CASE("attacks: blend_image_trigger reads a BMP of the dataset's size and channel count") {
  test::TempDir dir;
  // 7x5: rows of 15 bytes exercise the BMP row padding.
  const std::vector<uint8_t> rgb = random_images(1, 3, 7, 5, 12);
  const std::string path = dir / "trigger.bmp";
  write(path, test::bmp_bytes(rgb.data(), 3, 7, 5));
  const Trigger t = blend_image_trigger(path, 3, 7, 5, 0.3);
  CHECK(t.kind == Trigger::Kind::blend);
  CHECK(t.pattern == rgb);
  CHECK(t.alpha == 0.3);
  CHECK(t.name == "blend:" + path);
  CHECK(make_trigger("blend:" + path, 3, 7, 5, 0.3, 0).pattern == rgb);

  // A grey image written as equal R, G, B decodes to the same grey values in one channel.
  const std::vector<uint8_t> grey = random_images(1, 1, 7, 5, 13);
  const std::string grey_path = dir / "grey.bmp";
  write(grey_path, test::bmp_bytes(grey.data(), 1, 7, 5));
  CHECK(blend_image_trigger(grey_path, 1, 7, 5, 0.3).pattern == grey);
  CHECK(blend_image_trigger(grey_path, 3, 7, 5, 0.3).pattern.size() == 3 * 7 * 5);

  CHECK_THROWS_WITH_AS(blend_image_trigger(path, 3, 32, 32, 0.3),
                       doctest::Contains((path + ": blend image is 5x7 but the dataset's images are 32x32").c_str()), Error);
  CHECK_THROWS_WITH_AS(blend_image_trigger(path, 2, 7, 5, 0.3), doctest::Contains("1 or 3"), Error);
  const std::string broken = dir / "broken.png";
  write(broken, "\x89PNG\r\n\x1a\n not really");
  CHECK_THROWS_WITH_AS(blend_image_trigger(broken, 3, 7, 5, 0.3), doctest::Contains((broken + ": cannot decode image").c_str()),
                       Error);
}

TEST_CASE("attacks: poison_dataset draws floor(fraction * N) poisons, relabels them and records the ground truth") {
  const ImageDataset clean = make_synthetic(200, 10, 3);
  const Trigger t = badnets_trigger(3, 32, 32);
  for (const PoisonConfig& cfg :
       {PoisonConfig{0.05, 0, false, 1}, PoisonConfig{0.123, 3, false, 2}, PoisonConfig{0.5, 2, true, 3},
        PoisonConfig{0.0333, 0, true, 4}, PoisonConfig{0.05, 0, false, 1, PoisonDraw::python},
        PoisonConfig{0.5, 2, true, 3, PoisonDraw::python}}) {
    CAPTURE(cfg.fraction);
    CAPTURE(poison_draw_name(cfg.draw));
    const PoisonedSet p = poison_dataset(clean, t, cfg);
    const auto expected_count = static_cast<size_t>(std::floor(cfg.fraction * 200));
    REQUIRE(p.poison_indices.size() == expected_count);
    CHECK(std::is_sorted(p.poison_indices.begin(), p.poison_indices.end()));
    CHECK(std::adjacent_find(p.poison_indices.begin(), p.poison_indices.end()) == p.poison_indices.end());
    CHECK(p.original_labels == clean.labels);
    REQUIRE(p.is_poison.size() == 200);
    const std::set<int64_t> chosen(p.poison_indices.begin(), p.poison_indices.end());
    int64_t wrong = 0, from_target = 0;
    for (int64_t i = 0; i < 200; ++i) {
      const bool poison = chosen.count(i) > 0;
      wrong += p.is_poison[i] != (poison ? 1 : 0);
      const std::vector<uint8_t> image(clean.image(i), clean.image(i) + 3072);
      const std::vector<uint8_t> expected = poison ? triggered(t, image, 3, 32, 32) : image;
      wrong += !std::equal(expected.begin(), expected.end(), p.data.image(i));
      wrong += p.data.labels[i] != (poison ? cfg.target : clean.labels[i]);
      if (poison && clean.labels[i] == cfg.target) ++from_target;
      if (poison && !cfg.from_all_classes) wrong += clean.labels[i] == cfg.target;
    }
    CHECK(wrong == 0);
    // With 100 poisons from all classes, some come from the target class and only get the trigger.
    if (cfg.fraction == 0.5) CHECK(from_target > 0);
  }
  // Study 1's draw: random.seed(seed); random.sample(range(N), n) over all classes, or over the
  // list of the non-target indices.
  std::vector<int64_t> python = PyRandom(7).sample(200, 10);
  std::sort(python.begin(), python.end());
  CHECK(poison_dataset(clean, t, {0.05, 0, true, 7, PoisonDraw::python}).poison_indices == python);
  CHECK(poison_dataset(clean, t, {0.05, 0, true, 7, PoisonDraw::sieve}).poison_indices != python);
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < 200; ++i)
    if (clean.labels[i] != 0) candidates.push_back(i);
  std::vector<int64_t> picked;
  for (int64_t j : PyRandom(7).sample(static_cast<int64_t>(candidates.size()), 10)) picked.push_back(candidates[j]);
  std::sort(picked.begin(), picked.end());
  CHECK(poison_dataset(clean, t, {0.05, 0, false, 7, PoisonDraw::python}).poison_indices == picked);
  const PoisonConfig cfg{0.1, 0, false, 5};
  CHECK(poison_dataset(clean, t, cfg).poison_indices == poison_dataset(clean, t, cfg).poison_indices);
  CHECK(poison_dataset(clean, t, cfg).poison_indices != poison_dataset(clean, t, {0.1, 0, false, 6}).poison_indices);
  CHECK_THROWS_WITH_AS(poison_dataset(clean, t, {1.5, 0, false, 0}), doctest::Contains("--poison-fraction must be in [0, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(poison_dataset(clean, t, {0.1, 10, false, 0}), doctest::Contains("--target 10 is not a class of synthetic"),
                       Error);
  CHECK_THROWS_WITH_AS(poison_dataset(clean, t, {0.1, -1, false, 0}), doctest::Contains("--target -1"), Error);
  // 20 of the 200 images are class 0: only 180 candidates for 190 poisons.
  CHECK_THROWS_WITH_AS(poison_dataset(clean, t, {0.95, 0, false, 0}), doctest::Contains("only 180 candidate images"), Error);
}

TEST_CASE("attacks: triggered test set with and without the target class") {
  const ImageDataset test = make_synthetic(50, 10, 4);
  const Trigger t = red_square_trigger(26, 31);
  for (bool include_target : {false, true}) {
    CAPTURE(include_target);
    const ImageDataset out = triggered_test_set(test, t, 2, include_target);
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < test.size(); ++i)
      if (include_target || test.labels[i] != 2) kept.push_back(i);
    REQUIRE(out.size() == static_cast<int64_t>(kept.size()));
    CHECK(out.size() == (include_target ? 50 : 45));
    REQUIRE(out.images.size() == kept.size() * 3072);
    int64_t wrong = 0;
    for (size_t j = 0; j < kept.size(); ++j) {
      const std::vector<uint8_t> expected =
          triggered(t, std::vector<uint8_t>(test.image(kept[j]), test.image(kept[j]) + 3072), 3, 32, 32);
      wrong += !std::equal(expected.begin(), expected.end(), out.image(static_cast<int64_t>(j)));
      wrong += out.labels[j] != 2;
    }
    CHECK(wrong == 0);
  }
  CHECK_THROWS_WITH_AS(triggered_test_set(test, t, 10, false), doctest::Contains("--target 10"), Error);
}

TEST_CASE("poison preview: image grid layout, upscaling and grey images") {
  test::TempDir dir;
  // Two 1x2x3 grey images in one column at scale 2: 2 px gaps around 6x4 cells.
  const std::vector<uint8_t> a{10, 20, 30, 40, 50, 60}, b{70, 80, 90, 100, 110, 120};
  const std::string path = dir / "grid.png";
  write_image_grid(path, {a.data(), b.data()}, 1, 2, 3, 1, 2);
  const DecodedImage img = load_image(path, 3);
  const int64_t w = img.width, h = img.height;
  const auto px = [&](int64_t p) { return img.pixels[(p % 3) * h * w + p / 3]; };  // HWC index into CHW
  CHECK(w == 1 * (6 + 2) + 2);
  CHECK(h == 2 * (4 + 2) + 2);
  auto at = [&](int x, int y, int k) { return int(px((y * w + x) * 3 + k)); };
  CHECK(at(0, 0, 0) == 255);       // gap
  CHECK(at(2, 2, 1) == 10);        // a(0, 0), upscaled 2x2
  CHECK(at(3, 3, 2) == 10);
  CHECK(at(4 + 3, 2 + 2, 0) == 60);  // a(1, 2)
  CHECK(at(2, 8, 0) == 70);        // b(0, 0) below a and a gap
  CHECK_THROWS_WITH_AS(write_image_grid(path, {a.data()}, 2, 1, 3, 1, 2), doctest::Contains("1 or 3 channels"), Error);
  CHECK_THROWS_WITH_AS(write_image_grid(path, {a.data()}, 1, 2, 3, 1, 2, {"x", "y"}),
                       doctest::Contains("2 captions for 1 columns"), Error);
  CHECK_THROWS_WITH_AS(write_image_grid(path, {}, 1, 2, 3, 1, 2), doctest::Contains("no images"), Error);
}

TEST_CASE("poison preview: run_poison writes a clean row and a poisoned row") {
  test::TempDir dir;
  PoisonOptions o;
  o.preview = dir / "preview.png";
  o.count = 5;
  run_poison(o);
  const DecodedImage img = load_image(o.preview, 3);
  const int64_t w = img.width, h = img.height;
  const auto px = [&](int64_t p) { return img.pixels[(p % 3) * h * w + p / 3]; };  // HWC index into CHW
  // 5 columns of 128 px (32 px at scale 4) with 2 px gaps; 2 rows under an 18 px caption band.
  CHECK(w == 5 * 130 + 2);
  CHECK(h == 18 + 2 * 130 + 2);
  // The badnets square of the first poisoned image, bottom row: white; the clean one above: not.
  auto white = [&](int x, int y) { return px((y * w + x) * 3) == 255 && px((y * w + x) * 3 + 1) == 255 && px((y * w + x) * 3 + 2) == 255; };
  CHECK(white(2 + 30 * 4, 18 + 2 + 130 + 30 * 4));
  CHECK_FALSE(white(2 + 30 * 4, 18 + 2 + 30 * 4));

  o.fraction = 0.0;
  o.preview = dir / "none.png";
  CHECK_THROWS_WITH_AS(run_poison(o), doctest::Contains("nothing to preview"), Error);
  CHECK(dir.listing() == std::vector<std::string>{"preview.png"});
}

TEST_CASE("poison command: flags are validated with messages naming them") {
  auto parse = [](std::vector<std::string> args) {
    CLI::App app;
    PoisonOptions o;
    add_poison_command(app, o);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    return o;
  };
  const PoisonOptions o = parse({"poison", "--preview", "p.png", "--trigger", "blend", "--alpha", "0.1", "--target", "3",
                                 "--poison-fraction", "0.02", "--all-classes", "--count", "4", "--seed", "9"});
  CHECK(o.preview == "p.png");
  CHECK(o.trigger == "blend");
  CHECK(o.alpha == 0.1);
  CHECK(o.target == 3);
  CHECK(o.fraction == 0.02);
  CHECK(o.all_classes);
  CHECK(o.count == 4);
  CHECK(o.seed == 9);
  CHECK_THROWS_WITH_AS(parse({"poison"}), doctest::Contains("--preview"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"poison", "--preview", "p.png", "--alpha", "2"}), doctest::Contains("--alpha"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"poison", "--preview", "p.png", "--poison-fraction", "-0.1"}),
                       doctest::Contains("--poison-fraction"), CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"poison", "--preview", "p.png", "--target", "-1"}), doctest::Contains("--target"),
                       CLI::ParseError);
  CHECK_THROWS_WITH_AS(parse({"poison", "--preview", "p.png", "--count", "0"}), doctest::Contains("--count"), CLI::ParseError);
  PoisonOptions bad;
  bad.preview = "p.png";
  bad.dataset = "cifar10";
  CHECK_THROWS_WITH_AS(run_poison(bad), doctest::Contains("--data: the folder of cifar10 is needed"), Error);
}

TEST_CASE("attack success rate: a hand-made case, with and without the target class") {
  // Six triggered images: clean labels 0 (the target), 1, 2, 2, 3, 0; the model says 0 for
  // images 0, 1, 3 and 4, and 2 for images 2 and 5.
  const std::vector<int64_t> original{0, 1, 2, 2, 3, 0}, predicted{0, 0, 2, 0, 0, 2};
  CHECK(attack_success_rate(predicted, original, 0, false) == doctest::Approx(3.0 / 4.0));  // non-target only
  CHECK(attack_success_rate(predicted, original, 0, true) == doctest::Approx(4.0 / 6.0));   // all images
  CHECK(attack_success_rate(predicted, original, 2, false) == doctest::Approx(1.0 / 4.0));
  CHECK_THROWS_WITH_AS(attack_success_rate({0}, original, 0, false), doctest::Contains("1 predictions for 6 images"),
                       Error);
}
