#include "engine/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "engine/error.h"

namespace sieve {

namespace {

void check_t(int64_t t) { SIEVE_CHECK(t >= 0, "lr schedule: negative index t = ", t); }

class ConstantLr : public LrSchedule {
 public:
  explicit ConstantLr(double base) : base_(base) {}
  double lr(int64_t t) const override {
    check_t(t);
    return base_;
  }

 private:
  double base_;
};

class CosineLr : public LrSchedule {
 public:
  CosineLr(double base, int64_t t_max, double eta_min)
      : base_(base), t_max_(t_max), eta_min_(eta_min) {}
  double lr(int64_t t) const override {
    check_t(t);
    const double phase = std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_);
    return eta_min_ + (base_ - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
  }

 private:
  double base_;
  int64_t t_max_;
  double eta_min_;
};

class MultiStepLr : public LrSchedule {
 public:
  MultiStepLr(double base, std::vector<int64_t> milestones, double gamma)
      : base_(base), milestones_(std::move(milestones)), gamma_(gamma) {
    std::sort(milestones_.begin(), milestones_.end());
  }
  double lr(int64_t t) const override {
    check_t(t);
    const auto passed =
        std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
    return base_ * std::pow(gamma_, static_cast<double>(passed));
  }

 private:
  double base_;
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

class WarmupLr : public LrSchedule {
 public:
  WarmupLr(double base, int64_t warmup, std::unique_ptr<LrSchedule> after)
      : base_(base), warmup_(warmup), after_(std::move(after)) {}
  double lr(int64_t t) const override {
    check_t(t);
    if (t <= warmup_) return base_ * static_cast<double>(t) / static_cast<double>(warmup_);
    return after_ ? after_->lr(t - warmup_ - 1) : base_;
  }

 private:
  double base_;
  int64_t warmup_;
  std::unique_ptr<LrSchedule> after_;
};

}  // namespace

std::unique_ptr<LrSchedule> constant_lr(double base) { return std::make_unique<ConstantLr>(base); }

std::unique_ptr<LrSchedule> cosine_lr(double base, int64_t t_max, double eta_min) {
  SIEVE_CHECK(t_max > 0, "cosine_lr: t_max must be > 0, got ", t_max);
  return std::make_unique<CosineLr>(base, t_max, eta_min);
}

std::unique_ptr<LrSchedule> multistep_lr(double base, std::vector<int64_t> milestones,
                                         double gamma) {
  return std::make_unique<MultiStepLr>(base, std::move(milestones), gamma);
}

std::unique_ptr<LrSchedule> warmup_lr(double base, int64_t warmup,
                                      std::unique_ptr<LrSchedule> after) {
  SIEVE_CHECK(warmup > 0, "warmup_lr: warmup must be > 0 epochs, got ", warmup);
  return std::make_unique<WarmupLr>(base, warmup, std::move(after));
}

}  // namespace sieve
