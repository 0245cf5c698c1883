// Tensor: a contiguous n-d array of one dtype on one device, sharing reference-counted storage.
// Views (reshape, slices of the flat parameter buffer) share storage with a byte offset.
// Each tensor carries an AutogradMeta (requires_grad, grad) shared by its copies.
#pragma once
#include <memory>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"

namespace sieve {

// A block of memory on one device; CUDA blocks come from and go back to the caching allocator.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::cpu;
};

class Tensor;
struct AutogradMeta;
namespace autograd {
struct Node;
}

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu);
  // Same shape, dtype, device and layout.
  static Tensor empty_like(const Tensor& t);
  static Tensor zeros_like(const Tensor& t);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            Device device = Device::cpu);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const { return sieve::numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::cpu; }
  bool is_cuda() const { return device() == Device::cuda; }

  void* raw() const { return static_cast<char*>(storage_->data) + offset_; }
  // The elements in row-major order of shape(). A blocked tensor has no such order: an op that
  // does not know the blocked layout fails here, clearly, instead of reading it wrongly.
  template <class T>
  T* data() const {
    SIEVE_CHECK(!blocked_, "tensor: data() of a ", shape_str(shape_), " tensor in the blocked (nChw16c) layout; "
                "the op must take to_plain() of it first");
    return elements<T>();
  }
  // The elements in storage order, whatever the layout: for elementwise kernels (whose operands
  // share one layout) and kernels that know the blocked layout.
  template <class T>
  T* elements() const {
    SIEVE_CHECK(defined(), "tensor: data() of an undefined tensor");
    SIEVE_CHECK(dtype_ == dtype_of<T>(), "tensor: data<", dtype_name(dtype_of<T>()),
                ">() on a ", dtype_name(dtype_), " tensor");
    return static_cast<T*>(raw());
  }

  // The CPU fast path's blocked layout for (N, C, H, W) f32 activations with C a multiple of 16
  // (oneDNN's nChw16c): element (n, c, h, w) lives at ((n * C/16 + c/16) * H * W + h * W + w) * 16
  // + c % 16. Convolutions and batch norm work on it without reordering; every other op takes
  // to_plain() first. shape() is always the logical (N, C, H, W).
  bool blocked() const { return blocked_; }
  static bool can_block(const Shape& shape, DType dtype, Device device) {
    return shape.size() == 4 && shape[1] % 16 == 0 && dtype == DType::f32 && device == Device::cpu;
  }
  // A copy in the blocked (true) or the plain (false) layout, or this tensor when it is in it
  // already. Not recorded by autograd (the to_plain op is).
  Tensor relayout(bool blocked) const;
  // An empty tensor of the blocked layout: f32, or bf16 for a gradient handed to a bf16
  // convolution (autograd::accepts_bf16_grad), which no other op reads.
  static Tensor empty_blocked(const Shape& shape, DType dtype = DType::f32);

  Tensor to(Device device) const;  // copy (or this tensor when already there)
  Tensor to(DType dtype) const;    // converted copy on the same device
  Tensor clone() const;
  void copy_(const Tensor& src);   // same numel and dtype, any devices
  void fill_(double value);
  void zero_() { fill_(0.0); }
  void increment_();               // += 1 on an i64 tensor, where it lives (a counter buffer)

  template <class T>
  std::vector<T> to_vector() const;   // host copy; dtype must be T
  std::vector<double> to_double() const;  // host copy of any dtype, for tests and reports
  double item() const;                // the single element of a one-element tensor

  // Same storage, new shape with the same number of elements; not recorded by autograd
  // (the reshape op is). slice() views `shape` elements starting at element `offset`. A blocked
  // tensor can only be viewed with its own shape.
  Tensor view(const Shape& shape) const;
  Tensor slice(int64_t offset, const Shape& shape) const;
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }
  // No other tensor (or view) holds this storage: writing it in place is seen by no one else.
  bool owns_storage() const { return storage_ && storage_.use_count() == 1; }

  // Autograd. A leaf is a tensor whose requires_grad was set by the user (a parameter);
  // op outputs are non-leaves, whose gradients are freed once their backward has run.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const;
  const Tensor& grad() const;  // undefined tensor when there is none
  void set_grad(const Tensor& g) const;
  AutogradMeta& meta() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes into storage_
  Shape shape_;
  DType dtype_ = DType::f32;
  bool blocked_ = false;
  std::shared_ptr<AutogradMeta> meta_;
};

struct AutogradMeta {
  bool requires_grad = false;
  bool is_leaf = true;
  Tensor grad;                               // leaves only (an op result's lives in its node)
  std::shared_ptr<autograd::Node> grad_fn;   // an op result's node: its backward and its inputs' nodes
};

// "op: x (2, 3) and y (2, 4) differ" style checks used by every op.
void check_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                      const char* b_name);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, const char* name, DType expected);
void check_ndim(const char* op, const Tensor& t, const char* name, int ndim);

}  // namespace sieve
