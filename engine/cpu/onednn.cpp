// All of sieve's oneDNN code: convolution forward / backward-data / backward-weights plans cached
// by shape, and the GEMM peak measurement. A plan holds its primitive, the layouts oneDNN chose
// for each operand (format_tag::any: blocked layouts such as nChw16c for AVX-512) and the reorders
// between them and sieve's plain NCHW / OIHW f32 buffers, through three workspace buffers shared
// by all plans. Building a plan is slow (oneDNN generates code); running one allocates nothing
// once the workspaces have grown to the largest shape.
// sieve runs ops from one host thread, so the cache needs no lock; oneDNN threads each primitive
// with OpenMP, the same pool as OpenBLAS and sieve's own loops.
#include "engine/cpu/onednn.h"

#include <array>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <unordered_map>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "engine/error.h"

namespace sieve::cpu {

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}

// Buffers in oneDNN's layouts, one per operand slot of a primitive (0: first input, 1: second
// input, 2: output; 3: the gradient of the output, reordered once for both backward passes),
// shared by every plan and grown to the largest need: plans run one at a time, so one set serves
// all shapes instead of buffers per cached shape.
constexpr int kSharedDy = 3;

void* workspace(int slot, size_t bytes) {
  struct Buffer {
    void* data = nullptr;
    size_t bytes = 0;
  };
  static Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (b.bytes < bytes) {
    std::free(b.data);
    b.bytes = (bytes + 4095) / 4096 * 4096;
    b.data = std::aligned_alloc(64, b.bytes);
    SIEVE_CHECK(b.data, "conv2d: cannot allocate ", b.bytes, " bytes of oneDNN workspace");
  }
  return b.data;
}

// One operand of a primitive: the caller's plain f32 buffer and the primitive's own layout and
// dtype. When the two differ the operand is reordered through a workspace buffer (or a buffer
// the caller keeps); when they are equal the primitive works on the caller's buffer directly.
class Operand {
 public:
  Operand() = default;
  Operand(const memory::desc& plain, const memory::desc& inner, int slot)
      : user_(plain, cpu_engine(), DNNL_MEMORY_NONE), slot_(slot) {
    if (plain != inner) inner_ = memory(inner, cpu_engine(), DNNL_MEMORY_NONE);
  }

  bool reorders() const { return bool(inner_); }
  memory::desc layout() const { return inner_ ? inner_.get_desc() : user_.get_desc(); }
  size_t inner_bytes() const { return layout().get_size(); }

  // The memory a primitive reads: the caller's data, reordered into the primitive's layout in
  // `buffer` (inner_bytes() long), or in workspace `slot` when buffer is null (-1: this
  // operand's own slot).
  memory input(const float* data, void* buffer = nullptr, int slot = -1) {
    user_.set_data_handle(const_cast<float*>(data));
    if (!inner_) return user_;
    inner_.set_data_handle(buffer ? buffer : workspace(slot < 0 ? slot_ : slot, inner_bytes()));
    if (!to_inner_) to_inner_ = dnnl::reorder(user_, inner_);
    to_inner_.execute(cpu_stream(), user_, inner_);
    return inner_;
  }

  // Data already in the primitive's layout (written by input() into a kept buffer).
  memory already_inner(const void* buffer) {
    inner_.set_data_handle(const_cast<void*>(buffer));
    return inner_;
  }

  // The memory a primitive writes; finish_output() moves it into the caller's buffer.
  memory output(float* data) {
    user_.set_data_handle(data);
    if (!inner_) return user_;
    inner_.set_data_handle(workspace(slot_, inner_bytes()));
    return inner_;
  }
  void finish_output() {
    if (!inner_) return;
    if (!to_user_) to_user_ = dnnl::reorder(inner_, user_);
    to_user_.execute(cpu_stream(), inner_, user_);
  }

 private:
  memory user_, inner_;
  int slot_ = 0;
  dnnl::reorder to_inner_, to_user_;
};

enum class Pass : int64_t { forward, backward_data, backward_weights };

// The three tensors of a convolution in sieve's layouts (all f32): x and y plain NCHW or blocked.
memory::desc plain_x(const ConvShape& g) {
  return {{g.n, g.c, g.h, g.w}, dt::f32, g.x_blocked ? tag::nChw16c : tag::nchw};
}
memory::desc plain_y(const ConvShape& g) {
  return {{g.n, g.k, g.p, g.q}, dt::f32, g.y_blocked ? tag::nChw16c : tag::nchw};
}
memory::desc plain_w(const ConvShape& g) {
  if (g.groups == 1) return {{g.k, g.c, g.r, g.s}, dt::f32, tag::oihw};
  return {{g.groups, g.k / g.groups, g.c / g.groups, g.r, g.s}, dt::f32, tag::goihw};
}

// The same shapes with any layout, in the compute dtype (bf16 inputs) or f32 (results).
memory::desc any_like(const memory::desc& d, dt type) { return {d.dims(), type, tag::any}; }

dnnl::algorithm algorithm_of(const ConvShape& g) {
  return g.winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
}

dnnl::convolution_forward::primitive_desc forward_pd(const ConvShape& g, bool bf16) {
  const dt in = bf16 ? dt::bf16 : dt::f32;
  const memory::dims stride{g.stride, g.stride}, pad{g.pad, g.pad};
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, algorithm_of(g),
                                    any_like(plain_x(g), in), any_like(plain_w(g), in),
                                    any_like(plain_y(g), dt::f32), stride, pad, pad);
  return {d, cpu_engine()};
}

// One pass of one convolution shape: the primitive and its three operands, in argument order
// (forward: x, w -> y; backward data: dy, w -> dx; backward weights: x, dy -> dw).
struct Plan {
  dnnl::primitive primitive;
  int arg_a, arg_b, arg_out;
  Operand a, b, out;
  std::string impl;

  // Runs on inputs already in the primitive's layouts; the result lands in out_data.
  void run_on(const memory& a_mem, const memory& b_mem, float* out_data) {
    const std::unordered_map<int, memory> args{{arg_a, a_mem}, {arg_b, b_mem}, {arg_out, out.output(out_data)}};
    primitive.execute(cpu_stream(), args);
    out.finish_output();
    cpu_stream().wait();
  }
  void run(const float* a_data, const float* b_data, float* out_data) {
    run_on(a.input(a_data), b.input(b_data), out_data);
  }
};

std::unique_ptr<Plan> make_plan(const ConvShape& g, bool bf16, Pass pass) {
  SIEVE_CHECK(!g.winograd || winograd_suits(g, bf16), "conv2d: Winograd asked for a shape it does not suit");
  const dt in = bf16 ? dt::bf16 : dt::f32;
  const memory::dims stride{g.stride, g.stride}, pad{g.pad, g.pad};
  const auto fwd = forward_pd(g, bf16);
  auto plan = std::make_unique<Plan>();
  if (pass == Pass::forward) {
    plan->primitive = dnnl::convolution_forward(fwd);
    plan->arg_a = DNNL_ARG_SRC, plan->arg_b = DNNL_ARG_WEIGHTS, plan->arg_out = DNNL_ARG_DST;
    plan->a = Operand(plain_x(g), fwd.src_desc(), 0);
    plan->b = Operand(plain_w(g), fwd.weights_desc(), 1);
    plan->out = Operand(plain_y(g), fwd.dst_desc(), 2);
    plan->impl = fwd.impl_info_str();
  } else if (pass == Pass::backward_data) {
    dnnl::convolution_backward_data::desc d(algorithm_of(g), any_like(plain_x(g), dt::f32),
                                            any_like(plain_w(g), in), any_like(plain_y(g), in), stride, pad, pad);
    dnnl::convolution_backward_data::primitive_desc pd(d, cpu_engine(), fwd);
    plan->primitive = dnnl::convolution_backward_data(pd);
    plan->arg_a = DNNL_ARG_DIFF_DST, plan->arg_b = DNNL_ARG_WEIGHTS, plan->arg_out = DNNL_ARG_DIFF_SRC;
    plan->a = Operand(plain_y(g), pd.diff_dst_desc(), 0);
    plan->b = Operand(plain_w(g), pd.weights_desc(), 1);
    plan->out = Operand(plain_x(g), pd.diff_src_desc(), 2);
    plan->impl = pd.impl_info_str();
  } else {
    dnnl::convolution_backward_weights::desc d(algorithm_of(g), any_like(plain_x(g), in),
                                               any_like(plain_w(g), dt::f32), any_like(plain_y(g), in), stride,
                                               pad, pad);
    dnnl::convolution_backward_weights::primitive_desc pd(d, cpu_engine(), fwd);
    plan->primitive = dnnl::convolution_backward_weights(pd);
    plan->arg_a = DNNL_ARG_SRC, plan->arg_b = DNNL_ARG_DIFF_DST, plan->arg_out = DNNL_ARG_DIFF_WEIGHTS;
    plan->a = Operand(plain_x(g), pd.src_desc(), 0);
    plan->b = Operand(plain_y(g), pd.diff_dst_desc(), 1);
    plan->out = Operand(plain_w(g), pd.diff_weights_desc(), 2);
    plan->impl = pd.impl_info_str();
  }
  return plan;
}

using PlanKey = std::array<int64_t, 17>;

Plan& plan_for(const ConvShape& g, bool bf16, Pass pass) {
  static std::map<PlanKey, std::unique_ptr<Plan>> cache;
  const PlanKey key{g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.p, g.q, g.stride, g.pad, g.groups, g.x_blocked,
                    g.y_blocked, g.winograd, bf16, static_cast<int64_t>(pass)};
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  try {
    return *cache.emplace(key, make_plan(g, bf16, pass)).first->second;
  } catch (const dnnl::error& e) {
    fail("conv2d: oneDNN has no ", bf16 ? "bf16" : "f32", " convolution for x (", g.n, ", ", g.c, ", ", g.h, ", ",
         g.w, "), ", g.k, " filters ", g.r, "x", g.s, ", stride ", g.stride, ", padding ", g.pad, ", groups ",
         g.groups, ": ", e.what());
  }
}

}  // namespace

namespace {
// Whether oneDNN runs `isa`'s kernels here. Its ISA values are bit sets, each containing the ISAs
// below it.
bool onednn_isa_has(dnnl::cpu_isa isa) {
  return (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & static_cast<unsigned>(isa)) ==
         static_cast<unsigned>(isa);
}
}  // namespace

bool winograd_suits(const ConvShape& g, bool bf16) {
  static const bool amx = onednn_isa_has(dnnl::cpu_isa::avx512_core_amx);
  const int64_t least = bf16 ? 64 : 32;  // channels
  return !(bf16 && amx) && g.groups == 1 && g.r == 3 && g.s == 3 && g.stride == 1 && g.pad == 1 && g.c >= least &&
         g.k >= least && g.c % 16 == 0 && g.k % 16 == 0 && g.p >= 4 && g.q >= 4;
}

KeptInput conv2d_forward_onednn(const ConvShape& g, const float* x, const float* w, float* y, bool bf16,
                                bool keep_input) {
  Plan& fwd = plan_for(g, bf16, Pass::forward);
  // The backward-weights pass reads x again: when it wants the layout the forward pass reorders
  // x into, the reordered copy is kept for it instead of going through a workspace.
  if (keep_input && fwd.a.reorders() &&
      fwd.a.layout() == plan_for(g, bf16, Pass::backward_weights).a.layout()) {
    void* raw = std::aligned_alloc(64, (fwd.a.inner_bytes() + 63) / 64 * 64);
    SIEVE_CHECK(raw, "conv2d: cannot allocate ", fwd.a.inner_bytes(), " bytes for the kept input");
    KeptInput kept(raw, std::free);
    fwd.run_on(fwd.a.input(x, kept.get()), fwd.b.input(w), y);
    return kept;
  }
  fwd.run(x, w, y);
  return nullptr;
}

bool conv2d_reads_bf16_dy(const ConvShape& g, bool data, bool weights) {
  static const bool rounds = onednn_isa_has(dnnl::cpu_isa::avx512_core_bf16) && __builtin_cpu_supports("avx512bf16");
  if (!rounds || !g.y_blocked || g.winograd || !(data || weights)) return false;
  const memory::desc blocked({g.n, g.k, g.p, g.q}, dt::bf16, tag::nChw16c);
  return (!data || plan_for(g, true, Pass::backward_data).a.layout() == blocked) &&
         (!weights || plan_for(g, true, Pass::backward_weights).b.layout() == blocked);
}

void conv2d_backward_onednn(const ConvShape& g, const float* x, const KeptInput& kept_x, const float* w,
                            const float* dy, float* dx, float* dw, bool bf16, const uint16_t* dy_bf16) {
  Plan* data = dx ? &plan_for(g, bf16, Pass::backward_data) : nullptr;
  Plan* weights = dw ? &plan_for(g, bf16, Pass::backward_weights) : nullptr;
  // When both passes read dy in the same layout, it is reordered once for both.
  memory shared_dy;
  if (dy_bf16) {
    SIEVE_CHECK(bf16 && conv2d_reads_bf16_dy(g, data, weights), "conv2d: dy in bf16 for a pass that reads another layout");
    shared_dy = data ? data->a.already_inner(dy_bf16) : weights->b.already_inner(dy_bf16);
  } else if (data && weights && data->a.layout() == weights->b.layout()) {
    shared_dy = data->a.input(dy, nullptr, kSharedDy);
  }
  if (weights) {
    const memory x_mem = kept_x ? weights->a.already_inner(kept_x.get()) : weights->a.input(x);
    weights->run_on(x_mem, shared_dy ? shared_dy : weights->b.input(dy), dw);
  }
  if (data) data->run_on(shared_dy ? shared_dy : data->a.input(dy), data->b.input(w), dx);
}

void reorder_blocked(int64_t n, int64_t c, int64_t hw, const float* src, bool src_blocked, float* dst) {
  static std::map<std::array<int64_t, 4>, dnnl::reorder> cache;
  const memory::desc plain({n, c, hw, 1}, dt::f32, tag::nchw), blocked({n, c, hw, 1}, dt::f32, tag::nChw16c);
  const memory::desc& from = src_blocked ? blocked : plain;
  const memory::desc& to = src_blocked ? plain : blocked;
  memory a(from, cpu_engine(), const_cast<float*>(src)), b(to, cpu_engine(), dst);
  auto it = cache.find({n, c, hw, src_blocked});
  if (it == cache.end()) it = cache.emplace(std::array<int64_t, 4>{n, c, hw, src_blocked}, dnnl::reorder(a, b)).first;
  it->second.execute(cpu_stream(), a, b);
  cpu_stream().wait();
}

std::string conv2d_onednn_impl(const ConvShape& g, bool bf16) { return plan_for(g, bf16, Pass::forward).impl; }

std::string onednn_version() {
  const dnnl_version_t* v = dnnl::version();
  const char* isa = "unknown";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
         " (" + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime") + ", isa " + isa + ")";
}

double gemm_peak_tflops(int64_t size, bool bf16, int repeats) {
  const dt in = bf16 ? dt::bf16 : dt::f32;
  const memory::dims square{size, size};
  const memory::desc a_md(square, in, tag::ab), c_md(square, dt::f32, tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, a_md, c_md), cpu_engine());
  dnnl::matmul mm(pd);
  // Inputs hold small values so neither dtype overflows; their content does not change the time.
  std::vector<float> fill(static_cast<size_t>(size * size));
  for (size_t i = 0; i < fill.size(); ++i) fill[i] = static_cast<float>(i % 7) * 0.125f - 0.375f;
  memory user({square, dt::f32, tag::ab}, cpu_engine(), fill.data());
  memory a(a_md, cpu_engine()), b(a_md, cpu_engine()), c(c_md, cpu_engine());
  dnnl::reorder(user, a).execute(cpu_stream(), user, a);
  dnnl::reorder(user, b).execute(cpu_stream(), user, b);
  cpu_stream().wait();
  double best = 0;
  for (int i = 0; i <= repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    mm.execute(cpu_stream(), {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    cpu_stream().wait();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) best = std::max(best, 2.0 * double(size) * double(size) * double(size) / s / 1e12);
  }
  return best;
}

}  // namespace sieve::cpu
