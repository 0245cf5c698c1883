// Learning-rate schedules as pure functions of the epoch (or step) index t = 0, 1, ...; the
// caller decides whether t counts epochs or steps and hands lr(t) to the optimiser.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace sieve {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr(int64_t t) const = 0;
};

std::unique_ptr<LrSchedule> constant_lr(double base);

// PyTorch CosineAnnealingLR in closed form: eta_min + (base - eta_min) * (1 + cos(pi * t / t_max))
// / 2.
std::unique_ptr<LrSchedule> cosine_lr(double base, int64_t t_max, double eta_min = 0.0);

// PyTorch MultiStepLR: base * gamma^(number of milestones <= t).
std::unique_ptr<LrSchedule> multistep_lr(double base, std::vector<int64_t> milestones,
                                         double gamma);

// GradualWarmupScheduler with multiplier 1.0, as the studies use it: base * t / warmup for
// t <= warmup, then after->lr(t - warmup - 1), so the after-schedule starts at its own t = 0 one
// epoch after the warm-up ends. Without `after` the lr stays at base. Chainable.
std::unique_ptr<LrSchedule> warmup_lr(double base, int64_t warmup,
                                      std::unique_ptr<LrSchedule> after);

}  // namespace sieve
