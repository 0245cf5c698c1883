#include "engine/flops.h"

namespace sieve {

namespace {
int64_t g_flops = 0;
int g_counters = 0;
}  // namespace

void count_flops(int64_t flops) {
  if (g_counters > 0) g_flops += flops;
}

FlopCount::FlopCount() {
  if (g_counters++ == 0) g_flops = 0;
}
FlopCount::~FlopCount() { --g_counters; }
int64_t FlopCount::flops() const { return g_flops; }

}  // namespace sieve
