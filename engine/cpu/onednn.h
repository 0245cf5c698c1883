// The CPU fast path for convolution: oneDNN (the CPU counterpart of cuDNN), forward and both
// backward passes, f32 tensors in and out in sieve's NCHW layout. Inside, oneDNN picks its own
// blocked layouts (reordered in and out) and, with bf16, computes on bf16 copies of the inputs
// (AVX512-BF16 / AMX) while results stay f32. All oneDNN code lives in onednn.cpp, with primitives
// cached by shape as the cuDNN code caches its plans. Checked op by op against the reference
// im2col + GEMM path in tests/unit/conv2d_test.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace sieve::cpu {

// One convolution's sizes: x (n, c, h, w), w (k, c/groups, r, s), y (n, k, p, q).
// x_blocked / y_blocked: x and y (and their gradients) are in the blocked layout (nChw16c, see
// Tensor::blocked), else plain NCHW.
// winograd: all three passes use oneDNN's f32 Winograd F(4x4, 3x3) kernels instead of direct
// convolution (see winograd_suits; oneDNN has no bf16 Winograd, so such a shape computes in f32).
struct ConvShape {
  int64_t n, c, h, w, k, r, s, p, q, stride, pad, groups;
  bool x_blocked = false, y_blocked = false;
  bool winograd = false;
};

// Whether Winograd pays for this f32 convolution on this CPU: 3x3, stride 1, padding 1, no
// groups, at least 32 input and output channels (multiples of 16) and an output of at least 4x4
// (one 4x4 tile). Measured on a 2-core AVX-512 machine at batch 128, all three passes: 32-512
// channels at 16x16 down to 4x4 run 2-2.5x faster than direct convolution; 16 channels gain
// nothing, and a 2x2 output (one mostly empty tile) runs 2x slower. Winograd multiplies less but
// rounds more: its f32 error is a few times direct convolution's (about 1e-6 of the output's
// magnitude instead of 3e-7), which tests/unit/fast_path_test.cpp bounds against the f64 reference.
// With bf16 (`bf16` true) it suits shapes of 64+ channels unless the CPU has AMX. Without AMX,
// per pass at batch 128 (ms, oneDNN's own timing; bf16 direct + its two conversions to bf16):
// 64 channels on 8x8, Winograd 1.19 / 1.11 / 1.52 against bf16 1.27 / 1.24 / 2.04 + 0.14;
// 32 channels on 16x16, Winograd 1.84 / 1.60 / 2.07 against bf16 1.40 / 1.29 / 2.02 + 0.27.
bool winograd_suits(const ConvShape& g, bool bf16);

// The forward pass's input in oneDNN's layout, kept for the backward-weights pass so that it
// does not reorder x a second time; null when nothing was kept.
using KeptInput = std::shared_ptr<void>;

// y = conv(x, w). keep_input: return the reordered x for conv2d_backward_onednn (null when the
// backward-weights pass reads another layout, or x needs no reorder).
KeptInput conv2d_forward_onednn(const ConvShape& g, const float* x, const float* w, float* y, bool bf16,
                                bool keep_input = false);

// Both backward passes: dx (skipped when null) and dw (skipped when null), from one reorder of dy
// when both read the same layout. kept_x: the forward pass's kept input, or null (x is read).
// dy_bf16 (or null): dy already in bf16 in the blocked layout, read instead of dy (which may then
// be null); only where conv2d_reads_bf16_dy.
void conv2d_backward_onednn(const ConvShape& g, const float* x, const KeptInput& kept_x, const float* w,
                            const float* dy, float* dx, float* dw, bool bf16, const uint16_t* dy_bf16 = nullptr);

// Whether the bf16 backward passes that will run (data: dx wanted; weights: dw wanted) both read
// dy as bf16 in sieve's blocked layout (nChw16c), so that dy can be handed over in it; and whether
// this CPU rounds f32 to bf16 in one instruction (AVX512-BF16), as oneDNN's conversion then does,
// so that a kernel rounding dy itself (round_to_bf16) gives the same bits.
bool conv2d_reads_bf16_dy(const ConvShape& g, bool data, bool weights);

// The implementation oneDNN chose for a shape's forward pass, e.g. "brg:avx512_core" (for
// benchmarks and for tests that must not run a reference kernel by accident).
std::string conv2d_onednn_impl(const ConvShape& g, bool bf16);

// Copies n samples of c channels of hw pixels between the plain layout (N, C, HW) and the blocked
// one (nChw16c, c a multiple of 16): src_blocked says which way. Tensor::relayout's kernel.
void reorder_blocked(int64_t n, int64_t c, int64_t hw, const float* src, bool src_blocked, float* dst);

// "oneDNN 2.6.3 (cpu runtime OpenMP, isa avx512_core_bf16)".
std::string onednn_version();

// The GEMM peak of this CPU, for benchmarks: TFLOP/s of oneDNN's matrix product C = A B with
// square `size` matrices (f32, or bf16 inputs with f32 accumulation), the best of `repeats`
// timed runs after one warm-up.
double gemm_peak_tflops(int64_t size, bool bf16, int repeats);

}  // namespace sieve::cpu
