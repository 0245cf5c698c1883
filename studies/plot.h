// PNG line charts and image grids (stb_image_write) with a built-in 5x7 font: no plotting library needed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace sieve {

struct Series {
  std::string label;
  std::vector<double> x, y;
  uint32_t rgb = 0x1f77b4;
};

struct Panel {
  std::string title, xlabel;
  std::vector<Series> series;
};

// Panels side by side, each with axes, tick labels and a legend, under a common title.
void write_line_plots(const std::string& path, const std::string& title, const std::vector<Panel>& panels);

// Loss (train, test) and accuracy (train, test) per epoch.
void write_training_plot(const std::string& path, const std::vector<EpochStats>& history, const std::string& title);

// Grouped bars: per category (x axis) one bar per group, optional +-error whiskers; a NaN value
// draws no bar.
struct BarGroup {
  std::string label;
  std::vector<double> values, errors;  // one per category; errors may be empty
  uint32_t rgb = 0x1f77b4;
};

struct BarPanel {
  std::string title;
  std::vector<std::string> categories;
  std::vector<BarGroup> groups;
};

// Bar panels side by side under a common title, each with y ticks, category labels and a legend.
void write_bar_charts(const std::string& path, const std::string& title, const std::vector<BarPanel>& panels);

// u8 CHW images (1 or 3 channels) in rows of `columns`, each upscaled `scale` times by nearest
// neighbour, with thin white gaps; captions[i], when given, is drawn above column i.
void write_image_grid(const std::string& path, const std::vector<const uint8_t*>& images, int64_t channels,
                      int64_t height, int64_t width, int64_t columns, int scale,
                      const std::vector<std::string>& captions = {});

}  // namespace sieve
