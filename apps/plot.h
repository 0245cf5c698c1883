// PNG line charts (stb_image_write) with a built-in 5x7 font: no plotting library needed.
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

}  // namespace sieve
