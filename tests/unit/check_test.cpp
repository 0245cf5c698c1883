// The comparison every parity test relies on (tests/common/check.h), on hand cases: non-finite
// values are compared by class before any tolerance, so a NaN or infinite reference cannot make
// its own bound infinite and pass anything.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "tests/common/check.h"

using namespace sieve;
using test::compare_close;

TEST_CASE("compare_close: finite values within atol + rtol * |r|, non-finite by class") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const test::Tol tol{1e-5, 1e-4};
  CHECK(compare_close({1.0, 2.0}, {1.0, 2.0001}, tol).bad == 0);
  CHECK(compare_close({1.0, 2.0}, {1.0, 2.01}, tol).bad == 1);
  // Same class: NaN against NaN, +inf against +inf, -inf against -inf.
  CHECK(compare_close({nan, inf, -inf}, {nan, inf, -inf}, tol).bad == 0);
  // Every mismatch of class fails, whichever side is non-finite.
  const auto r = compare_close({-inf, 0.0, nan, 1.0, inf, 3.0}, {inf, nan, 0.0, inf, 1e308, 3.0}, tol);
  CHECK(r.bad == 5);
  CHECK(r.worst == 0);
  CHECK(r.max_err == inf);
  // The worst element is the one furthest outside its bound.
  const auto w = compare_close({1.0, 5.0, 2.0}, {1.1, 4.0, 2.0}, tol);
  CHECK(w.bad == 2);
  CHECK(w.worst == 1);
  CHECK(w.max_err == doctest::Approx(1.0));
}
