// GPU parity suite entry point. With no GPU visible it lists the cases it would have run and
// exits 77, which ctest reports as "Skipped" (never as passed).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "engine/device.h"

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  if (!sieve::cuda_available()) {
    std::printf("SKIPPED: GPU parity suite not run: %s. Cases skipped:\n",
                sieve::cuda_device_description().c_str());
    context.setOption("list-test-cases", true);
    context.run();
    return 77;
  }
  std::printf("GPU parity suite on %s\n", sieve::cuda_device_description().c_str());
  return context.run();
}
