#include "studies/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "engine/error.h"
#include "engine/io.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace sieve {

namespace {

// 5x7 glyphs, one byte per row, bit 4 = leftmost column. Upper case draws as lower case.
const std::map<char, std::array<uint8_t, 7>>& font() {
  static const std::map<char, std::array<uint8_t, 7>> f{
      {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},   {'2', {14, 17, 1, 2, 4, 8, 31}},
      {'3', {31, 2, 4, 2, 1, 17, 14}},     {'4', {2, 6, 10, 18, 31, 2, 2}},  {'5', {31, 16, 30, 1, 1, 17, 14}},
      {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},    {'8', {14, 17, 17, 14, 17, 17, 14}},
      {'9', {14, 17, 17, 15, 1, 2, 12}},   {'.', {0, 0, 0, 0, 0, 12, 12}},   {'-', {0, 0, 0, 31, 0, 0, 0}},
      {':', {0, 12, 12, 0, 12, 12, 0}},    {'/', {0, 1, 2, 4, 8, 16, 0}},    {'(', {2, 4, 8, 8, 8, 4, 2}},
      {')', {8, 4, 2, 2, 2, 4, 8}},        {'%', {24, 25, 2, 4, 8, 19, 3}},  {'_', {0, 0, 0, 0, 0, 0, 31}},
      {'=', {0, 0, 31, 0, 31, 0, 0}},      {',', {0, 0, 0, 0, 12, 4, 8}},    {'+', {0, 4, 4, 31, 4, 4, 0}},
      {'a', {0, 0, 14, 1, 15, 17, 15}},    {'b', {16, 16, 22, 25, 17, 17, 30}}, {'c', {0, 0, 14, 16, 16, 17, 14}},
      {'d', {1, 1, 13, 19, 17, 17, 15}},   {'e', {0, 0, 14, 17, 31, 16, 14}}, {'f', {6, 9, 8, 28, 8, 8, 8}},
      {'g', {0, 15, 17, 17, 15, 1, 14}},   {'h', {16, 16, 22, 25, 17, 17, 17}}, {'i', {4, 0, 12, 4, 4, 4, 14}},
      {'j', {2, 0, 6, 2, 2, 18, 12}},      {'k', {16, 16, 18, 20, 24, 20, 18}}, {'l', {12, 4, 4, 4, 4, 4, 14}},
      {'m', {0, 0, 26, 21, 21, 17, 17}},   {'n', {0, 0, 22, 25, 17, 17, 17}}, {'o', {0, 0, 14, 17, 17, 17, 14}},
      {'p', {0, 0, 30, 17, 30, 16, 16}},   {'q', {0, 0, 13, 19, 15, 1, 1}},  {'r', {0, 0, 22, 25, 16, 16, 16}},
      {'s', {0, 0, 14, 16, 14, 1, 30}},    {'t', {8, 8, 28, 8, 8, 9, 6}},    {'u', {0, 0, 17, 17, 17, 19, 13}},
      {'v', {0, 0, 17, 17, 17, 10, 4}},    {'w', {0, 0, 17, 17, 21, 21, 10}}, {'x', {0, 0, 17, 10, 4, 10, 17}},
      {'y', {0, 0, 17, 17, 15, 1, 14}},    {'z', {0, 0, 31, 2, 4, 8, 31}}};
  return f;
}

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int width, int height) : w(width), h(height), px(static_cast<size_t>(width * height * 3), 255) {}
  void set(int x, int y, uint32_t rgb) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
    p[0] = uint8_t(rgb >> 16), p[1] = uint8_t(rgb >> 8), p[2] = uint8_t(rgb);
  }
  void line(double x0, double y0, double x1, double y1, uint32_t rgb, int thick = 1) {
    const int steps = std::max(1, static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))));
    for (int i = 0; i <= steps; ++i) {
      const double t = static_cast<double>(i) / steps;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
      for (int dy = 0; dy < thick; ++dy)
        for (int dx = 0; dx < thick; ++dx) set(x + dx - thick / 2, y + dy - thick / 2, rgb);
    }
  }
  // Text with its top-left corner at (x, y); scale 2 = 10x14 pixel glyphs.
  void text(int x, int y, const std::string& s, uint32_t rgb = 0x222222, int scale = 2) {
    for (char ch : s) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto it = font().find(c);
      if (it != font().end())
        for (int r = 0; r < 7; ++r)
          for (int b = 0; b < 5; ++b)
            if (it->second[r] & (16 >> b))
              for (int sy = 0; sy < scale; ++sy)
                for (int sx = 0; sx < scale; ++sx) set(x + b * scale + sx, y + r * scale + sy, rgb);
      x += 6 * scale;
    }
  }
  static int text_width(const std::string& s, int scale = 2) { return static_cast<int>(s.size()) * 6 * scale; }
};

std::string tick_label(double v) {
  char buf[32];
  if (std::abs(v) >= 1000 || (std::abs(v) < 0.01 && v != 0)) std::snprintf(buf, sizeof buf, "%.1e", v);
  else std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

void draw_panel(Canvas& cv, int x0, int y0, int w, int h, const Panel& p) {
  const int left = x0 + 80, right = x0 + w - 20, top = y0 + 40, bottom = y0 + h - 50;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const Series& s : p.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]),
                                 ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad, ymax += pad;
  auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * (right - left); };
  auto Y = [&](double v) { return bottom - (v - ymin) / (ymax - ymin) * (bottom - top); };
  cv.text(left, y0 + 12, p.title);
  for (int i = 0; i <= 4; ++i) {
    const double v = ymin + (ymax - ymin) * i / 4.0, y = Y(v);
    cv.line(left, y, right, y, 0xe0e0e0);
    const std::string lab = tick_label(v);
    cv.text(left - 6 - Canvas::text_width(lab), static_cast<int>(y) - 7, lab, 0x444444);
    const double xv = xmin + (xmax - xmin) * i / 4.0;
    const std::string xl = tick_label(xv);
    cv.text(static_cast<int>(X(xv)) - Canvas::text_width(xl) / 2, bottom + 8, xl, 0x444444);
  }
  cv.line(left, top, left, bottom, 0x222222);
  cv.line(left, bottom, right, bottom, 0x222222);
  cv.text((left + right) / 2 - Canvas::text_width(p.xlabel) / 2, bottom + 28, p.xlabel);
  int ly = top + 6;
  for (const Series& s : p.series) {
    for (size_t i = 0; i + 1 < s.x.size(); ++i)
      if (std::isfinite(s.y[i]) && std::isfinite(s.y[i + 1])) cv.line(X(s.x[i]), Y(s.y[i]), X(s.x[i + 1]), Y(s.y[i + 1]), s.rgb, 2);
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) cv.line(X(s.x[i]) - 2, Y(s.y[i]), X(s.x[i]) + 2, Y(s.y[i]), s.rgb, 4);
    const int lx = right - 10 - Canvas::text_width(s.label) - 30;
    cv.line(lx, ly + 7, lx + 22, ly + 7, s.rgb, 3);
    cv.text(lx + 28, ly, s.label, s.rgb);
    ly += 20;
  }
}

void write_png(const std::string& path, const Canvas& cv) {
  int len = 0;
  unsigned char* png = stbi_write_png_to_mem(cv.px.data(), cv.w * 3, cv.w, cv.h, 3, &len);
  SIEVE_CHECK(png != nullptr, path, ": PNG encoding failed");
  const std::string bytes(reinterpret_cast<const char*>(png), static_cast<size_t>(len));
  STBIW_FREE(png);
  write_file_atomic(path, bytes);
}

}  // namespace

void write_line_plots(const std::string& path, const std::string& title, const std::vector<Panel>& panels) {
  SIEVE_CHECK(!panels.empty(), "plot: no panels for ", path);
  const int pw = 560, ph = 420, n = static_cast<int>(panels.size());
  Canvas cv(pw * n, ph + 40);
  cv.text(20, 10, title, 0x000000);
  for (int i = 0; i < n; ++i) draw_panel(cv, i * pw, 40, pw, ph, panels[i]);
  write_png(path, cv);
}

void write_training_plot(const std::string& path, const std::vector<EpochStats>& history, const std::string& title) {
  Series tl{"train", {}, {}, 0x1f77b4}, vl{"test", {}, {}, 0xd62728};
  Series ta{"train", {}, {}, 0x1f77b4}, va{"test", {}, {}, 0xd62728};
  for (const EpochStats& s : history) {
    const double e = static_cast<double>(s.epoch);
    tl.x.push_back(e), tl.y.push_back(s.train_loss), vl.x.push_back(e), vl.y.push_back(s.test_loss);
    ta.x.push_back(e), ta.y.push_back(s.train_acc), va.x.push_back(e), va.y.push_back(s.test_acc);
  }
  write_line_plots(path, title, {Panel{"loss", "epoch", {tl, vl}}, Panel{"accuracy", "epoch", {ta, va}}});
}

void write_image_grid(const std::string& path, const std::vector<const uint8_t*>& images, int64_t channels,
                      int64_t height, int64_t width, int64_t columns, int scale, const std::vector<std::string>& captions) {
  SIEVE_CHECK(!images.empty(), "image grid ", path, ": no images");
  SIEVE_CHECK(channels == 1 || channels == 3, "image grid ", path, ": images must have 1 or 3 channels, got ", channels);
  SIEVE_CHECK(height > 0 && width > 0 && height <= 4096 && width <= 4096, "image grid ", path, ": bad image size ",
              height, "x", width);
  SIEVE_CHECK(columns > 0, "image grid ", path, ": columns must be positive, got ", columns);
  SIEVE_CHECK(scale >= 1 && scale <= 64, "image grid ", path, ": scale must be in 1..64, got ", scale);
  SIEVE_CHECK(static_cast<int64_t>(captions.size()) <= columns, "image grid ", path, ": ", captions.size(),
              " captions for ", columns, " columns");
  for (const uint8_t* img : images) SIEVE_CHECK(img != nullptr, "image grid ", path, ": null image");
  const auto n = static_cast<int64_t>(images.size());
  const int64_t cols = std::min(columns, n), rows = (n + columns - 1) / columns;
  const int gap = 2, cw = static_cast<int>(width) * scale, ch = static_cast<int>(height) * scale;
  // Captions in 10x14 glyphs when every one fits its column, else in 5x7.
  int text_scale = 2;
  for (const std::string& c : captions)
    if (Canvas::text_width(c, 2) > cw) text_scale = 1;
  const int band = captions.empty() ? 0 : 7 * text_scale + 2 * gap;
  SIEVE_CHECK(cols * (cw + gap) + gap <= 32768 && rows * (ch + gap) + gap + band <= 32768, "image grid ", path,
              ": ", rows, "x", cols, " images of ", cw, "x", ch, " pixels make too large a PNG");
  Canvas cv(static_cast<int>(cols * (cw + gap) + gap), static_cast<int>(rows * (ch + gap) + gap + band));
  for (size_t i = 0; i < captions.size(); ++i) {
    const int x0 = gap + static_cast<int>(i) * (cw + gap);
    cv.text(x0 + (cw - Canvas::text_width(captions[i], text_scale)) / 2, gap, captions[i], 0x222222, text_scale);
  }
  const int64_t plane = height * width;
  for (int64_t j = 0; j < n; ++j) {
    const int x0 = gap + static_cast<int>(j % columns) * (cw + gap), y0 = band + gap + static_cast<int>(j / columns) * (ch + gap);
    const uint8_t* img = images[j];
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x) {
        const int64_t p = (y / scale) * width + x / scale;
        const uint32_t r = img[p], g = img[(channels == 3 ? plane : 0) + p], b = img[(channels == 3 ? 2 * plane : 0) + p];
        cv.set(x0 + x, y0 + y, r << 16 | g << 8 | b);
      }
  }
  write_png(path, cv);
}


namespace {

void fill_rect(Canvas& cv, int x0, int y0, int x1, int y1, uint32_t rgb) {
  for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
    for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) cv.set(x, y, rgb);
}

void draw_bar_panel(Canvas& cv, int x0, int y0, int w, int h, const BarPanel& p) {
  const int left = x0 + 80, right = x0 + w - 20, top = y0 + 60, bottom = y0 + h - 50;
  // The value axis always includes 0, so bar lengths compare.
  double ymin = 0, ymax = 0;
  for (const BarGroup& g : p.groups)
    for (size_t c = 0; c < g.values.size(); ++c) {
      if (!std::isfinite(g.values[c])) continue;
      const double e = g.errors.empty() || !std::isfinite(g.errors[c]) ? 0.0 : std::abs(g.errors[c]);
      ymin = std::min(ymin, g.values[c] - e), ymax = std::max(ymax, g.values[c] + e);
    }
  if (ymax == ymin) ymax = ymin + 1;
  ymax += 0.05 * (ymax - ymin);
  auto Y = [&](double v) { return static_cast<int>(std::lround(bottom - (v - ymin) / (ymax - ymin) * (bottom - top))); };
  cv.text(left, y0 + 12, p.title);
  for (int i = 0; i <= 4; ++i) {
    const double v = ymin + (ymax - ymin) * i / 4.0;
    cv.line(left, Y(v), right, Y(v), 0xe0e0e0);
    const std::string lab = tick_label(v);
    cv.text(left - 6 - Canvas::text_width(lab), Y(v) - 7, lab, 0x444444);
  }
  const int nc = static_cast<int>(p.categories.size()), ng = static_cast<int>(p.groups.size());
  const double slot = static_cast<double>(right - left) / std::max(nc, 1);
  const double bar = 0.8 * slot / std::max(ng, 1);
  for (int c = 0; c < nc; ++c) {
    const int centre = static_cast<int>(left + (c + 0.5) * slot);
    cv.text(centre - Canvas::text_width(p.categories[c]) / 2, bottom + 8, p.categories[c]);
    for (int g = 0; g < ng; ++g) {
      const BarGroup& grp = p.groups[g];
      const double v = grp.values[c];
      if (!std::isfinite(v)) continue;
      const int bx = static_cast<int>(left + c * slot + 0.1 * slot + g * bar);
      fill_rect(cv, bx + 1, Y(std::max(v, 0.0)), bx + static_cast<int>(bar) - 1, Y(std::min(v, 0.0)), grp.rgb);
      const double e = grp.errors.empty() ? 0.0 : grp.errors[c];
      if (std::isfinite(e) && e > 0) {
        const int mid = bx + static_cast<int>(bar / 2);
        cv.line(mid, Y(v - e), mid, Y(v + e), 0x222222);
        cv.line(mid - 3, Y(v - e), mid + 3, Y(v - e), 0x222222);
        cv.line(mid - 3, Y(v + e), mid + 3, Y(v + e), 0x222222);
      }
    }
  }
  cv.line(left, top, left, bottom, 0x222222);
  cv.line(left, Y(0), right, Y(0), 0x222222);
  // The legend sits above the plot area, where no bar can hide it.
  int lx = right;
  for (int g = ng - 1; g >= 0; --g) {
    lx -= Canvas::text_width(p.groups[g].label) + 36;
    fill_rect(cv, lx, y0 + 36, lx + 20, y0 + 48, p.groups[g].rgb);
    cv.text(lx + 26, y0 + 35, p.groups[g].label, p.groups[g].rgb);
  }
}

}  // namespace

void write_bar_charts(const std::string& path, const std::string& title, const std::vector<BarPanel>& panels) {
  SIEVE_CHECK(!panels.empty(), "plot: no panels for ", path);
  for (const BarPanel& p : panels)
    for (const BarGroup& g : p.groups)
      SIEVE_CHECK(g.values.size() == p.categories.size() && (g.errors.empty() || g.errors.size() == g.values.size()),
                  "plot ", path, ": bars '", g.label, "' of panel '", p.title, "' have ", g.values.size(), " values and ",
                  g.errors.size(), " errors for ", p.categories.size(), " categories");
  const int pw = 560, ph = 440, n = static_cast<int>(panels.size());
  Canvas cv(pw * n, ph + 40);
  cv.text(20, 10, title, 0x000000);
  for (int i = 0; i < n; ++i) draw_bar_panel(cv, i * pw, 40, pw, ph, panels[i]);
  write_png(path, cv);
}

}  // namespace sieve
