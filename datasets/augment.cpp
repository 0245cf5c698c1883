#include "datasets/augment.h"

#include "datasets/augment_kernel.h"
#include "engine/dispatch.h"

namespace sieve {

#if SIEVE_WITH_CUDA
namespace cuda {
void assemble_batch(const uint8_t* images, int64_t c, int64_t h, int64_t w, const int64_t* indices, int64_t b,
                    const AugmentParams& p, const int64_t* counter, float* out);
}
#endif

namespace {

void check_batch_inputs(const char* op, const Tensor& images, const Tensor& indices, const AugmentParams& p) {
  check_dtype(op, images, "images", DType::u8);
  check_dtype(op, indices, "indices", DType::i64);
  check_ndim(op, images, "images", 4);
  check_same_device(op, images, indices);
  SIEVE_CHECK(images.dim(1) <= 3, op, ": at most 3 channels, got ", images.dim(1));
  SIEVE_CHECK(p.padding >= 0, op, ": negative padding");
}

}  // namespace

Tensor assemble_staged_batch(const Tensor& images, const Tensor& indices, const Tensor& counter,
                             const AugmentParams& p) {
  check_batch_inputs("assemble_staged_batch", images, indices, p);
  SIEVE_CHECK(images.is_cuda() && counter.is_cuda() && counter.dtype() == DType::i64 && counter.numel() == 1,
              "assemble_staged_batch: GPU images and a (1,) i64 counter on the GPU");
  Tensor out = Tensor::empty({indices.numel(), images.dim(1), images.dim(2), images.dim(3)}, DType::f32, Device::cuda);
  SIEVE_IF_CUDA(cuda::assemble_batch(images.data<uint8_t>(), images.dim(1), images.dim(2), images.dim(3),
                                     indices.data<int64_t>(), indices.numel(), p, counter.data<int64_t>(),
                                     out.data<float>()));
  return out;
}

Tensor assemble_batch(const Tensor& images, const Tensor& indices, const AugmentParams& p) {
  check_batch_inputs("assemble_batch", images, indices, p);
  const int64_t n = images.dim(0), c = images.dim(1), h = images.dim(2), w = images.dim(3), b = indices.numel();
  // Indices are checked on the host, on both devices: on the GPU a bad one would read outside the
  // images and surface as an illegal address at some later, unrelated call.
  const std::vector<int64_t> host_indices = indices.to_vector<int64_t>();
  for (int64_t i = 0; i < b; ++i)
    SIEVE_CHECK(host_indices[i] >= 0 && host_indices[i] < n, "assemble_batch: index ", host_indices[i],
                " outside a dataset of ", n);
  Tensor out = Tensor::empty({b, c, h, w}, DType::f32, images.device());
  if (images.is_cuda()) {
    SIEVE_IF_CUDA(cuda::assemble_batch(images.data<uint8_t>(), c, h, w, indices.data<int64_t>(), b, p, nullptr,
                                       out.data<float>()));
    return out;
  }
  const uint8_t* src = images.data<uint8_t>();
  const int64_t* idx = host_indices.data();
  float* dst = out.data<float>();
#pragma omp parallel for
  for (int64_t i = 0; i < b; ++i) {
    const CropFlipBits cf = crop_flip_bits(p.seed, p.counter + static_cast<uint64_t>(i), p.padding);
    const uint8_t* img = src + idx[i] * c * h * w;
    for (int64_t k = 0; k < c; ++k)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          dst[((i * c + k) * h + y) * w + x] =
              augmented_pixel(img, h, w, k, y, x, cf, p.padding, p.crop_flip, p.mean[k], 1.0f / p.std[k]);
  }
  return out;
}

}  // namespace sieve
