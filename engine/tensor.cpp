#include "engine/tensor.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include "engine/cpu/onednn.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#if SIEVE_WITH_CUDA
#include "engine/cuda/core_kernels.h"
#endif

namespace sieve {

namespace {
// glibc serves blocks above 128 KiB with mmap and returns them on free, so every activation of
// a training step would be fresh pages (page faults, zeroing). Keeping them on the heap makes a
// step after the first reuse memory, as the CUDA caching allocator does on the GPU. Trimming is
// off (-1) as well: at the end of a step the freed activations coalesce at the top of the heap,
// over a GiB for MobileNetV2, and a finite threshold handed them back to the system every step
// (60,000 page faults a step at batch 64).
const bool g_heap_reuse = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, -1);
  return true;
}();
}  // namespace

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  const size_t alloc_bytes = nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64;
  if (dev == Device::cpu) {
    data = std::aligned_alloc(64, alloc_bytes);
    SIEVE_CHECK(data != nullptr, "out of host memory: asked for ", alloc_bytes, " bytes");
  } else {
    data = cuda_alloc(alloc_bytes);
  }
}

Storage::~Storage() {
  if (device == Device::cpu)
    std::free(data);
  else
    cuda_free(data, bytes == 0 ? 64 : (bytes + 63) / 64 * 64);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    SIEVE_CHECK(d >= 0, "tensor: negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(sieve::numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.meta_ = std::make_shared<AutogradMeta>();
  return t;
}

Tensor Tensor::empty_blocked(const Shape& shape, DType dtype) {
  SIEVE_CHECK(can_block(shape, DType::f32, Device::cpu), "tensor: shape ", shape_str(shape),
              " has no blocked layout (it needs (N, C, H, W) with C a multiple of 16)");
  SIEVE_CHECK(dtype == DType::f32 || dtype == DType::bf16, "tensor: no blocked layout in ", dtype_name(dtype));
  Tensor t = empty(shape, dtype, Device::cpu);
  t.blocked_ = true;
  return t;
}

Tensor Tensor::empty_like(const Tensor& t) {
  return t.blocked_ ? empty_blocked(t.shape(), t.dtype()) : empty(t.shape(), t.dtype(), t.device());
}

Tensor Tensor::zeros_like(const Tensor& t) {
  Tensor z = empty_like(t);
  z.zero_();
  return z;
}

Tensor Tensor::relayout(bool blocked) const {
  if (blocked == blocked_) return *this;
  Tensor t = blocked ? empty_blocked(shape_) : empty(shape_, dtype_, device());
  cpu::reorder_blocked(shape_[0], shape_[1], shape_[2] * shape_[3], elements<float>(), blocked_, t.elements<float>());
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  SIEVE_CHECK(static_cast<int64_t>(values.size()) == sieve::numel(shape), "tensor: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>(), device);
  copy_bytes(t.raw(), device, values.data(), Device::cpu, values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&, Device);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&, Device);

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int k = i < 0 ? i + n : i;
  SIEVE_CHECK(k >= 0 && k < n, "tensor: dim ", i, " out of range for shape ", shape_str(shape_));
  return shape_[k];
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  if (blocked_) return relayout(false).to(dev);
  Tensor t = empty(shape_, dtype_, dev);
  copy_bytes(t.raw(), dev, raw(), device(), nbytes());
  return t;
}

namespace {

// Host-side element load/store through double, for conversions and to_double().
double load_host(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

void store_host(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16(static_cast<float>(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
  }
}

}  // namespace

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_) return *this;
  if (blocked_) return relayout(false).to(dt);
  Tensor t = empty(shape_, dt, device());
  const int64_t n = numel();
  if (is_cuda()) {
    SIEVE_IF_CUDA(cuda::convert(raw(), dtype_, t.raw(), dt, n));
  } else {
    for (int64_t i = 0; i < n; ++i) store_host(t.raw(), dt, i, load_host(raw(), dtype_, i));
  }
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty_like(*this);
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  SIEVE_CHECK(numel() == src.numel() && dtype_ == src.dtype_, "copy_: destination ",
              shape_str(shape_), " ", dtype_name(dtype_), " and source ", shape_str(src.shape_), " ",
              dtype_name(src.dtype_), " differ");
  if (src.blocked_ != blocked_) {
    SIEVE_CHECK(shape_ == src.shape_, "copy_: a blocked tensor copies only into its own shape ", shape_str(src.shape_),
                ", not ", shape_str(shape_));
    const Tensor same = src.relayout(blocked_);
    copy_bytes(raw(), device(), same.raw(), same.device(), nbytes());
    return;
  }
  copy_bytes(raw(), device(), src.raw(), src.device(), nbytes());
}

void Tensor::fill_(double value) {
  const int64_t n = numel();
  if (is_cuda()) {
    SIEVE_IF_CUDA(cuda::fill(raw(), dtype_, n, value));
  } else if (value == 0.0) {
    std::memset(raw(), 0, nbytes());
  } else {
    for (int64_t i = 0; i < n; ++i) store_host(raw(), dtype_, i, value);
  }
}

void Tensor::increment_() {
  check_dtype("increment_", *this, "tensor", DType::i64);
  if (is_cuda()) {
    SIEVE_IF_CUDA(cuda::increment(data<int64_t>(), numel()));
    return;
  }
  int64_t* p = data<int64_t>();
  for (int64_t i = 0; i < numel(); ++i) ++p[i];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  SIEVE_CHECK(dtype_ == dtype_of<T>(), "to_vector: tensor is ", dtype_name(dtype_), ", asked for ",
              dtype_name(dtype_of<T>()));
  if (blocked_) return relayout(false).to_vector<T>();
  std::vector<T> out(static_cast<size_t>(numel()));
  copy_bytes(out.data(), Device::cpu, raw(), device(), nbytes());
  return out;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

std::vector<double> Tensor::to_double() const {
  if (blocked_) return relayout(false).to_double();
  const Tensor host = to(Device::cpu);
  std::vector<double> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[i] = load_host(host.raw(), dtype_, i);
  return out;
}

double Tensor::item() const {
  SIEVE_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape_), " is not one element");
  return to_double()[0];
}

Tensor Tensor::view(const Shape& shape) const {
  SIEVE_CHECK(sieve::numel(shape) == numel(), "view: cannot view ", shape_str(shape_), " as ",
              shape_str(shape));
  SIEVE_CHECK(!blocked_ || shape == shape_, "view: a blocked ", shape_str(shape_), " tensor cannot be viewed as ",
              shape_str(shape), "; take to_plain() of it first");
  Tensor t = *this;
  t.shape_ = shape;
  t.meta_ = std::make_shared<AutogradMeta>();
  return t;
}

Tensor Tensor::slice(int64_t offset, const Shape& shape) const {
  SIEVE_CHECK(!blocked_, "slice: of a blocked ", shape_str(shape_), " tensor; take to_plain() of it first");
  SIEVE_CHECK(offset >= 0 && offset + sieve::numel(shape) <= numel(), "slice: elements [", offset,
              ", ", offset + sieve::numel(shape), ") out of a tensor of ", numel());
  Tensor t = *this;
  t.offset_ = offset_ + static_cast<size_t>(offset) * dtype_size(dtype_);
  t.shape_ = shape;
  t.meta_ = std::make_shared<AutogradMeta>();
  return t;
}

AutogradMeta& Tensor::meta() const {
  SIEVE_CHECK(meta_ != nullptr, "tensor: autograd state of an undefined tensor");
  return *meta_;
}

bool Tensor::requires_grad() const { return meta_ && meta_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  meta().requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { return !meta_ || meta_->is_leaf; }

const Tensor& Tensor::grad() const {
  static const Tensor undefined;
  return meta_ ? meta_->grad : undefined;
}

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined()) check_same_shape("set_grad", *this, "tensor", g, "gradient");
  meta().grad = g;
}

void check_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                      const char* b_name) {
  SIEVE_CHECK(a.shape() == b.shape(), op, ": ", a_name, " ", shape_str(a.shape()), " and ", b_name,
              " ", shape_str(b.shape()), " must have the same shape");
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  SIEVE_CHECK(a.device() == b.device(), op, ": tensors on different devices (",
              device_name(a.device()), " and ", device_name(b.device()), ")");
}

void check_dtype(const char* op, const Tensor& t, const char* name, DType expected) {
  SIEVE_CHECK(t.dtype() == expected, op, ": ", name, " must be ", dtype_name(expected), ", got ",
              dtype_name(t.dtype()));
}

void check_ndim(const char* op, const Tensor& t, const char* name, int ndim) {
  SIEVE_CHECK(t.ndim() == ndim, op, ": ", name, " must be ", ndim, "-d, got ", shape_str(t.shape()));
}

}  // namespace sieve
