// Learning-rate schedules against hand-computed values (PyTorch's closed forms).
#include <doctest/doctest.h>

#include <cmath>

#include "engine/error.h"
#include "engine/schedule.h"

using namespace sieve;

TEST_CASE("schedule: constant and cosine annealing") {
  const auto constant = constant_lr(0.05);
  CHECK(constant->lr(0) == 0.05);
  CHECK(constant->lr(1000) == 0.05);

  // CosineAnnealingLR(T_max=50, eta_min=1e-5) from 0.1.
  const auto cosine = cosine_lr(0.1, 50, 1e-5);
  CHECK(cosine->lr(0) == doctest::Approx(0.1).epsilon(1e-12));
  CHECK(cosine->lr(25) == doctest::Approx(0.050005).epsilon(1e-12));
  CHECK(cosine->lr(49) == doctest::Approx(1.0865371222856342e-4).epsilon(1e-12));
  CHECK(cosine->lr(50) == doctest::Approx(1e-5).epsilon(1e-12));
  const auto cosine0 = cosine_lr(0.1, 50);
  CHECK(cosine0->lr(1) == doctest::Approx(0.09990133642141358).epsilon(1e-12));
  CHECK(cosine0->lr(3) == doctest::Approx(0.09911436253643445).epsilon(1e-12));
  CHECK(cosine0->lr(50) == doctest::Approx(0.0));
}

TEST_CASE("schedule: multistep counts the milestones already reached") {
  const auto s = multistep_lr(0.1, {150, 100}, 0.1);  // order does not matter
  CHECK(s->lr(0) == doctest::Approx(0.1));
  CHECK(s->lr(99) == doctest::Approx(0.1));
  CHECK(s->lr(100) == doctest::Approx(0.01));
  CHECK(s->lr(149) == doctest::Approx(0.01));
  CHECK(s->lr(150) == doctest::Approx(0.001));
  CHECK(s->lr(400) == doctest::Approx(0.001));
  CHECK(multistep_lr(0.2, {}, 0.5)->lr(7) == 0.2);
}

TEST_CASE("schedule: gradual warm-up then the after-schedule, chainable") {
  // 10 warm-up epochs, then cosine over the remaining 50: lr(e) = 0.1 * e / 10 for e <= 10,
  // then the cosine from its own t = 0 at e = 11.
  const auto s = warmup_lr(0.1, 10, cosine_lr(0.1, 50));
  for (int64_t e = 0; e <= 10; ++e)
    CHECK(s->lr(e) == doctest::Approx(0.1 * static_cast<double>(e) / 10.0));
  CHECK(s->lr(0) == 0.0);
  CHECK(s->lr(11) == doctest::Approx(0.1));
  CHECK(s->lr(12) == doctest::Approx(0.09990133642141358).epsilon(1e-12));
  CHECK(s->lr(14) == doctest::Approx(0.09911436253643445).epsilon(1e-12));
  CHECK(s->lr(61) == doctest::Approx(0.0));

  // Without an after-schedule the lr stays at base.
  const auto plain = warmup_lr(0.2, 4, nullptr);
  CHECK(plain->lr(2) == doctest::Approx(0.1));
  CHECK(plain->lr(9) == 0.2);

  // Warm-up (5) -> multistep (milestone 10); and a warm-up inside a warm-up.
  const auto chained = warmup_lr(0.1, 5, multistep_lr(0.1, {10}, 0.1));
  CHECK(chained->lr(5) == doctest::Approx(0.1));
  CHECK(chained->lr(15) == doctest::Approx(0.1));   // after(9)
  CHECK(chained->lr(16) == doctest::Approx(0.01));  // after(10)
  const auto nested = warmup_lr(0.1, 2, warmup_lr(0.4, 4, constant_lr(0.4)));
  CHECK(nested->lr(1) == doctest::Approx(0.05));
  CHECK(nested->lr(3) == 0.0);                   // inner t = 0
  CHECK(nested->lr(5) == doctest::Approx(0.2));  // inner t = 2
  CHECK(nested->lr(8) == doctest::Approx(0.4));  // inner t = 5 -> constant
}

TEST_CASE("schedule: bad arguments are rejected") {
  CHECK_THROWS_WITH_AS(cosine_lr(0.1, 0), doctest::Contains("cosine_lr: t_max must be > 0, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(warmup_lr(0.1, 0, nullptr),
                       doctest::Contains("warmup_lr: warmup must be > 0"), Error);
  CHECK_THROWS_WITH_AS(constant_lr(0.1)->lr(-1),
                       doctest::Contains("lr schedule: negative index t = -1"), Error);
}
