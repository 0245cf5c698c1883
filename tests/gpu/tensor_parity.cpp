// Tensor plumbing on the GPU: copies, fills, dtype conversions, gradient accumulation, the
// caching allocator and its out-of-memory message, and the fused batch assembly kernel.
#include <doctest/doctest.h>

#include "datasets/augment.h"
#include "datasets/dataset.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops/elementwise.h"
#include "tests/common/check.h"

using namespace sieve;

TEST_CASE("parity: copies, fills and dtype conversions match the CPU bit for bit") {
  const Tensor x = test::random_tensor({1001}, 3, -70000.0, 70000.0);  // past f16's range too
  for (DType to : {DType::bf16, DType::f16, DType::f64, DType::i32, DType::i64}) {
    const Tensor cpu = x.to(to);
    const Tensor gpu = x.to(Device::cuda).to(to);
    CHECK(gpu.is_cuda());
    test::expect_close(gpu.to(Device::cpu), cpu, {0, 0}, std::string("f32 -> ") + dtype_name(to));
    test::expect_close(gpu.to(DType::f32), cpu.to(DType::f32), {0, 0}, std::string(dtype_name(to)) + " -> f32");
  }
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8}) {
    const Tensor g = Tensor::full({77}, 3.0, t, Device::cuda);
    test::expect_close(g.to(Device::cpu), Tensor::full({77}, 3.0, t), {0, 0}, std::string("fill ") + dtype_name(t));
  }
}

TEST_CASE("parity: gradients accumulate on the GPU") {
  Tensor x = test::leaf(test::random_tensor({300}, 4).to(Device::cuda));
  Tensor y = add(scale(x, 2.0), x);  // dy/dx = 3
  autograd::backward(y, Tensor::full({300}, 1.0, DType::f32, Device::cuda));
  test::expect_close(x.grad(), Tensor::full({300}, 3.0, DType::f32, Device::cuda), {0, 0}, "accumulated gradient");
}

TEST_CASE("cuda allocator: a repeated step allocates nothing new, and OOM names the sizes") {
  auto step = [] {
    Tensor a = Tensor::full({1 << 20}, 1.0, DType::f32, Device::cuda);
    Tensor b = scale(a, 2.0);
    return b.to(Device::cpu).to_vector<float>()[5];
  };
  CHECK(step() == 2.0f);
  const int64_t before = cuda_allocator_stats().driver_allocs;
  for (int i = 0; i < 5; ++i) CHECK(step() == 2.0f);
  CHECK(cuda_allocator_stats().driver_allocs == before);
  CHECK_THROWS_WITH_AS(Tensor::empty({int64_t(1) << 50}, DType::f32, Device::cuda),
                       doctest::Contains("CUDA out of memory: asked for"), Error);
}

TEST_CASE("parity: fused gather + crop + flip + normalise is identical on CPU and GPU") {
  const ImageDataset ds = make_synthetic(40, 4, 3);
  const Tensor images = Tensor::from_vector(ds.images, {40, 3, 32, 32});
  const Tensor idx = Tensor::from_vector(std::vector<int64_t>{39, 0, 7, 7, 12, 30, 1}, {7});
  AugmentParams p;
  p.crop_flip = true, p.seed = 5, p.counter = 1234;
  p.mean = ds.mean, p.std = ds.std;
  for (bool aug : {true, false}) {
    p.crop_flip = aug;
    const Tensor cpu = assemble_batch(images, idx, p);
    const Tensor gpu = assemble_batch(images.to(Device::cuda), idx.to(Device::cuda), p);
    // Same crops and flips (integer Philox arithmetic); the normalisation may differ by an ulp
    // where nvcc contracts (v / 255 - mean) * inv_std into an FMA.
    test::expect_close(gpu, cpu, {1e-6, 1e-6}, aug ? "augmented batch" : "plain batch");
  }
  // A bad index is refused before the kernel reads outside the images.
  const Tensor bad = Tensor::from_vector(std::vector<int64_t>{3, 40}, {2}, Device::cuda);
  CHECK_THROWS_WITH_AS(assemble_batch(images.to(Device::cuda), bad, p),
                       doctest::Contains("assemble_batch: index 40 outside a dataset of 40"), Error);
}

TEST_CASE("parity: an i64 counter increments on the GPU (BatchNorm's num_batches_tracked)") {
  Tensor c = Tensor::full({3}, 100.0, DType::i64, Device::cuda);
  c.increment_();
  c.increment_();
  CHECK(c.to(Device::cpu).to_vector<int64_t>() == std::vector<int64_t>{102, 102, 102});
}
