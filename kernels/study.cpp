// sieve-kernel-study: the hand-written CUDA kernels of the training step, each beside its readable
// CPU reference and its variants. For every (kernel, variant, shape) it checks the GPU result
// against the reference, times the launches with CUDA events (median of repeats), and reports the
// bytes the variant must move, the bandwidth reached and its fraction of the GPU's nominal peak,
// with the exact ncu command that profiles it. Kernels: fused batch norm + ReLU forward and
// backward, batch assembly (gather, crop, flip, normalise), fused SGD with mask, softmax
// cross-entropy. kernels/README.md explains the variants and the byte counts.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/augment.h"
#include "engine/cuda/batchnorm_cuda.h"
#include "engine/cuda/context.h"
#include "engine/cuda/elementwise_cuda.h"
#include "engine/cuda/loss_cuda.h"
#include "engine/cuda/sgd_cuda.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "engine/sgd.h"
#include "engine/tensor.h"

using namespace sieve;
using nlohmann::json;

namespace {

struct Options {
  std::string only, out = "results/kernels";
  int repeats = 20;
};

// The device buffers of one case: uploaded from host vectors, read back for the checks.
Tensor up(const std::vector<float>& v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, Device::cuda); }
Tensor up(const std::vector<int64_t>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, Device::cuda);
}
std::vector<float> random_floats(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * g.uniform());
  return v;
}

// Median microseconds per launch of `launch` (which may be several kernels), after warm-up.
double time_us(const std::function<void()>& launch, int repeats) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t begin, end;
  SIEVE_CUDA_CHECK(cudaEventCreate(&begin));
  SIEVE_CUDA_CHECK(cudaEventCreate(&end));
  std::vector<double> per_launch;
  for (int r = 0; r < 5; ++r) {
    SIEVE_CUDA_CHECK(cudaEventRecord(begin, cuda::stream()));
    for (int i = 0; i < repeats; ++i) launch();
    SIEVE_CUDA_CHECK(cudaEventRecord(end, cuda::stream()));
    SIEVE_CUDA_CHECK(cudaEventSynchronize(end));
    float ms = 0;
    SIEVE_CUDA_CHECK(cudaEventElapsedTime(&ms, begin, end));
    per_launch.push_back(1000.0 * ms / repeats);
  }
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  std::sort(per_launch.begin(), per_launch.end());
  return per_launch[per_launch.size() / 2];
}

// Largest |a - r| / (atol + rtol |r|) over the elements: <= 1 passes.
double worst_ratio(const std::vector<float>& a, const std::vector<double>& r, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double e = std::fabs(static_cast<double>(a[i]) - r[i]) / (atol + rtol * std::fabs(r[i]));
    worst = std::max(worst, std::isnan(e) ? INFINITY : e);
  }
  return worst;
}

struct Row {
  std::string kernel, variant, shape, kernels;  // kernels: the __global__ names, for ncu
  double error_ratio = 0, us = 0, bytes = 0;
  bool passed = false;
};

class Study {
 public:
  Study(Options o) : o_(std::move(o)) {
    int dev = 0, clock_khz = 0, bus_bits = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
    peak_gbs_ = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
  }
  bool wants(const std::string& kernel) const { return o_.only.empty() || o_.only == kernel; }

  void add(Row r, const std::function<void()>& launch) {
    r.us = time_us(launch, o_.repeats);
    std::fprintf(stderr, "%-22s %-34s %-22s %s  %9.1f us  %7.1f GB/s\n", r.kernel.c_str(), r.variant.c_str(),
                 r.shape.c_str(), r.passed ? "ok    " : "FAILED", r.us, r.bytes / r.us / 1e3);
    rows_.push_back(std::move(r));
  }

  int write() const {
    std::filesystem::create_directories(o_.out);
    json doc = {{"gpu", cuda_device_description()},
                {"libraries", cuda_library_versions()},
                {"nominal_peak_gb_per_s", peak_gbs_},
                {"repeats", o_.repeats},
                {"rows", json::array()}};
    std::ostringstream md;
    md << "# sieve kernel study\n\n- GPU: " << cuda_device_description() << "\n- " << cuda_library_versions()
       << "\n- nominal memory bandwidth " << peak_gbs_ << " GB/s (memory clock x bus width x 2)\n"
       << "- each time is the median of 5 runs of " << o_.repeats << " launches, after 3 warm-up launches\n\n"
       << "| kernel | variant | shape | check vs CPU | us | MB moved | GB/s | % of peak |\n|---|---|---|---|---|---|---|---|\n";
    int failed = 0;
    for (const Row& r : rows_) {
      const double gbs = r.bytes / r.us / 1e3;
      char line[512];
      std::snprintf(line, sizeof line, "| %s | %s | %s | %s (%.2f) | %.1f | %.2f | %.0f | %.0f%% |\n", r.kernel.c_str(),
                    r.variant.c_str(), r.shape.c_str(), r.passed ? "ok" : "FAILED", r.error_ratio, r.us, r.bytes / 1e6,
                    gbs, 100.0 * gbs / peak_gbs_);
      md << line;
      failed += !r.passed;
      doc["rows"].push_back({{"kernel", r.kernel}, {"variant", r.variant}, {"shape", r.shape},
                             {"cuda_kernels", r.kernels}, {"error_ratio", r.error_ratio}, {"passed", r.passed},
                             {"us", r.us}, {"bytes", r.bytes}, {"gb_per_s", gbs}});
    }
    md << "\nThe check column is the largest |GPU - CPU| / (atol + rtol |CPU|) over the output (<= 1 passes).\n\n"
          "Profile one kernel (Nsight Compute):\n\n";
    std::vector<std::string> seen;
    for (const Row& r : rows_) {
      if (std::find(seen.begin(), seen.end(), r.kernel) != seen.end()) continue;
      seen.push_back(r.kernel);
      md << "    ncu --kernel-name regex:'" << r.kernels << "' --launch-skip 3 --launch-count 1 --set full -o "
         << r.kernel << " build/release/sieve-kernel-study --only " << r.kernel << " --repeats 1\n";
    }
    std::ofstream(o_.out + "/kernels.md") << md.str();
    std::ofstream(o_.out + "/kernels.json") << doc.dump(1) << "\n";
    std::fprintf(stderr, "wrote %s/kernels.md and kernels.json (%d of %zu rows failed their check)\n",
                 o_.out.c_str(), failed, rows_.size());
    return failed == 0 ? 0 : 1;
  }

 private:
  Options o_;
  double peak_gbs_ = 0;
  std::vector<Row> rows_;
};

std::string shape_name(std::initializer_list<int64_t> dims) {
  std::string s;
  for (int64_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

// Batch norm (training statistics) + ReLU. Reference: per channel, in double.
void bn_relu(Study& st, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t HW = H * W, E = N * C * HW;
  const double eps = 1e-5;
  const std::vector<float> x = random_floats(static_cast<size_t>(E), 1, -2, 3), dy = random_floats(E, 2);
  const std::vector<float> w = random_floats(C, 3, 0.5, 1.5), b = random_floats(C, 4, -0.5, 0.5);
  std::vector<double> ref_y(E), ref_dx(E), mean(C), invstd(C);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) s += x[(n * C + c) * HW + i];
    mean[c] = s / (N * HW);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) s2 += std::pow(x[(n * C + c) * HW + i] - mean[c], 2);
    invstd[c] = 1 / std::sqrt(s2 / (N * HW) + eps);
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const int64_t k = (n * C + c) * HW + i;
        const double xh = (x[k] - mean[c]) * invstd[c];
        ref_y[k] = std::max(0.0, xh * w[c] + b[c]);
        const double g = ref_y[k] > 0 ? dy[k] : 0;
        sg += g, sgx += g * xh;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const int64_t k = (n * C + c) * HW + i;
        const double xh = (x[k] - mean[c]) * invstd[c];
        const double g = ref_y[k] > 0 ? dy[k] : 0;
        ref_dx[k] = w[c] * invstd[c] * (g - sg / (N * HW) - xh * sgx / (N * HW));
      }
  }
  const Tensor dx_ = up(x), ddy = up(dy), dw = up(w), db = up(b);
  const Tensor rm = Tensor::zeros({C}, DType::f32, Device::cuda), rv = Tensor::full({C}, 1.0, DType::f32, Device::cuda);
  const Tensor m = Tensor::empty({C}, DType::f32, Device::cuda), is = Tensor::empty({C}, DType::f32, Device::cuda);
  const Tensor y = Tensor::empty({E}, DType::f32, Device::cuda), g = Tensor::empty({E}, DType::f32, Device::cuda);
  const Tensor dx = Tensor::empty({E}, DType::f32, Device::cuda);
  const Tensor sg = Tensor::empty({C}, DType::f32, Device::cuda), sgx = Tensor::empty({C}, DType::f32, Device::cuda);
  const std::string shape = shape_name({N, C, H, W});
  const double e4 = 4.0 * static_cast<double>(E);
  auto stats = [&] {
    cuda::batchnorm_batch_stats(dx_.data<float>(), N, C, HW, eps, 0.1, m.data<float>(), is.data<float>(),
                                rm.data<float>(), rv.data<float>());
  };
  if (st.wants("bn_relu_forward")) {
    auto fused = [&] {
      stats();
      cuda::batchnorm_forward(dx_.data<float>(), m.data<float>(), is.data<float>(), dw.data<float>(), db.data<float>(),
                              y.data<float>(), N, C, HW, true);
    };
    auto unfused = [&] {
      stats();
      cuda::batchnorm_forward(dx_.data<float>(), m.data<float>(), is.data<float>(), dw.data<float>(), db.data<float>(),
                              y.data<float>(), N, C, HW, false);
      cuda::clamp_forward(y.data<float>(), y.data<float>(), E, INFINITY);
    };
    const char* names = "batch_stats_.*|forward_kernel|clamp_forward_kernel";
    // Statistics read x once; normalising reads x and writes y; a separate ReLU reads and writes y.
    for (auto& [variant, launch, bytes] : std::vector<std::tuple<std::string, std::function<void()>, double>>{
             {"fused (stats + normalise/ReLU)", fused, 3 * e4}, {"unfused (stats + normalise + ReLU)", unfused, 5 * e4}}) {
      launch();
      const double r = worst_ratio(y.to_vector<float>(), ref_y, 1e-5, 1e-4);
      st.add({"bn_relu_forward", variant, shape, names, r, 0, bytes, r <= 1}, launch);
    }
  }
  if (st.wants("bn_relu_backward")) {
    stats();
    cuda::batchnorm_forward(dx_.data<float>(), m.data<float>(), is.data<float>(), dw.data<float>(), db.data<float>(),
                            y.data<float>(), N, C, HW, true);
    auto fused = [&] {
      cuda::batchnorm_backward_reduce(dx_.data<float>(), y.data<float>(), ddy.data<float>(), m.data<float>(),
                                      is.data<float>(), N, C, HW, sg.data<float>(), sgx.data<float>());
      cuda::batchnorm_backward_input(dx_.data<float>(), y.data<float>(), ddy.data<float>(), m.data<float>(),
                                     is.data<float>(), dw.data<float>(), sg.data<float>(), sgx.data<float>(),
                                     dx.data<float>(), N, C, HW, true);
    };
    auto unfused = [&] {
      cuda::clamp_backward(y.data<float>(), ddy.data<float>(), g.data<float>(), E, INFINITY);
      cuda::batchnorm_backward_reduce(dx_.data<float>(), nullptr, g.data<float>(), m.data<float>(), is.data<float>(), N,
                                      C, HW, sg.data<float>(), sgx.data<float>());
      cuda::batchnorm_backward_input(dx_.data<float>(), nullptr, g.data<float>(), m.data<float>(), is.data<float>(),
                                     dw.data<float>(), sg.data<float>(), sgx.data<float>(), dx.data<float>(), N, C, HW,
                                     true);
    };
    const char* names = "backward_.*|clamp_backward_kernel";
    // Fused: the reduction reads x, y, dy; the input gradient reads them again and writes dx.
    // Unfused: the ReLU mask reads y, dy and writes g; then x, g and x, g, dx.
    for (auto& [variant, launch, bytes] : std::vector<std::tuple<std::string, std::function<void()>, double>>{
             {"fused (ReLU mask inside both passes)", fused, 7 * e4}, {"unfused (ReLU backward first)", unfused, 8 * e4}}) {
      launch();
      const double r = worst_ratio(dx.to_vector<float>(), ref_dx, 1e-4, 1e-3);
      st.add({"bn_relu_backward", variant, shape, names, r, 0, bytes, r <= 1}, launch);
    }
  }
}

// Batch assembly. Reference: the CPU path of assemble_batch, the same Philox draws.
void assembly(Study& st, int64_t pool, int64_t B) {
  if (!st.wants("batch_assembly")) return;
  const int64_t C = 3, H = 32, W = 32;
  Generator gen(7);
  std::vector<uint8_t> pixels(static_cast<size_t>(pool * C * H * W));
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(gen.below(256));
  std::vector<int64_t> idx(static_cast<size_t>(B));
  for (int64_t& i : idx) i = static_cast<int64_t>(gen.below(static_cast<uint64_t>(pool)));
  const Tensor images_cpu = Tensor::from_vector(pixels, {pool, C, H, W}, Device::cpu);
  const Tensor images = images_cpu.to(Device::cuda);
  const Tensor idx_cpu = Tensor::from_vector(idx, {B}, Device::cpu), idx_gpu = idx_cpu.to(Device::cuda);
  const Tensor counter = Tensor::full({1}, 1000, DType::i64, Device::cuda);
  for (bool crop_flip : {true, false}) {
    const AugmentParams p{crop_flip, 4, 3, 1000, {0.49f, 0.48f, 0.45f}, {0.25f, 0.24f, 0.26f}};
    const std::vector<float> ref = assemble_batch(images_cpu, idx_cpu, p).to_vector<float>();
    Tensor out;
    // The training step's call: counter on the device, no host-side index check in the timing.
    auto launch = [&] { out = assemble_staged_batch(images, idx_gpu, counter, p); };
    launch();
    const double r = worst_ratio(out.to_vector<float>(), std::vector<double>(ref.begin(), ref.end()), 0, 0);
    // Gathers one u8 per output element and writes one f32.
    st.add({"batch_assembly", crop_flip ? "gather + crop + flip + normalise" : "gather + normalise",
            shape_name({B, C, H, W}), "assemble_batch_kernel", r, 0, 5.0 * B * C * H * W, r == 0},
           launch);
  }
}

// SGD with momentum, weight decay and a pruning mask. Reference: engine/sgd.h's update on the CPU.
void sgd(Study& st, int64_t n) {
  if (!st.wants("sgd_masked")) return;
  const std::vector<float> w0 = random_floats(n, 11), g = random_floats(n, 12), buf0 = random_floats(n, 13);
  std::vector<float> mask(static_cast<size_t>(n));
  Generator gen(14);
  for (float& m : mask) m = gen.uniform() < 0.8 ? 1.0f : 0.0f;
  const SgdCoefficients k{0.9f, 1.0f, 5e-4f, false, false};
  const float lr = 0.1f;
  std::vector<double> ref(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float b = buf0[i];
    ref[i] = sgd_update(w0[i], g[i], mask[i], &b, lr, k);
  }
  const Tensor dg = up(g), dm = up(mask), dlr = Tensor::full({1}, lr, DType::f32, Device::cuda);
  Tensor w = up(w0), buf = up(buf0);
  const Tensor t1 = Tensor::empty({n}, DType::f32, Device::cuda), t2 = Tensor::empty({n}, DType::f32, Device::cuda);
  auto reset = [&] { w = up(w0), buf = up(buf0); };
  auto fused = [&] {
    cuda::sgd_step(w.data<float>(), dg.data<float>(), buf.data<float>(), dm.data<float>(), dlr.data<float>(), nullptr,
                   n, k);
  };
  // The same update as separate elementwise kernels, one operation each, as a framework without
  // a fused optimiser runs it.
  auto unfused = [&] {
    float* W = w.data<float>();
    float* Bf = buf.data<float>();
    cuda::mul(dg.data<float>(), dm.data<float>(), t1.data<float>(), n);  // d = g * mask
    cuda::scale(W, k.weight_decay, t2.data<float>(), n);                  // wd * w
    cuda::add(t1.data<float>(), t2.data<float>(), t1.data<float>(), n);   // d += wd * w
    cuda::scale(Bf, k.momentum, Bf, n);                                   // buf *= momentum
    cuda::add(Bf, t1.data<float>(), Bf, n);                               // buf += d
    cuda::scale(Bf, -lr, t2.data<float>(), n);                            // -lr * buf
    cuda::add(W, t2.data<float>(), W, n);                                 // w -= lr * buf
    cuda::mul(W, dm.data<float>(), W, n);                                 // w *= mask
  };
  const double e4 = 4.0 * static_cast<double>(n);
  // Fused: reads w, g, buf, mask, writes w, buf. Unfused: 8 kernels of 2 or 3 streams each.
  for (auto& [variant, launch, bytes, exact] : std::vector<std::tuple<std::string, std::function<void()>, double, bool>>{
           {"fused (one pass, mask, momentum, wd)", fused, 6 * e4, true},
           {"unfused (8 elementwise kernels)", unfused, 21 * e4, false}}) {
    reset();
    launch();
    const double r = worst_ratio(w.to_vector<float>(), ref, exact ? 0 : 1e-7, exact ? 0 : 1e-6);
    st.add({"sgd_masked", variant, std::to_string(n) + " params", "sgd_step_kernel|mul_kernel|scale_kernel|add_kernel",
            r, 0, bytes, exact ? r == 0 : r <= 1},
           launch);
  }
}

// Softmax cross-entropy forward (mean loss) and backward. Reference: in double.
void cross_entropy(Study& st, int64_t n, int64_t c) {
  if (!st.wants("softmax_cross_entropy")) return;
  const std::vector<float> logits = random_floats(static_cast<size_t>(n * c), 21, -4, 4);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  Generator gen(22);
  for (int64_t& l : labels) l = static_cast<int64_t>(gen.below(static_cast<uint64_t>(c)));
  std::vector<double> ref_loss(1, 0), ref_grad(static_cast<size_t>(n * c));
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; ++j) mx = std::max(mx, static_cast<double>(logits[i * c + j]));
    for (int64_t j = 0; j < c; ++j) s += std::exp(logits[i * c + j] - mx);
    ref_loss[0] += (std::log(s) + mx - logits[i * c + labels[i]]) / n;
    for (int64_t j = 0; j < c; ++j)
      ref_grad[i * c + j] = (std::exp(logits[i * c + j] - mx) / s - (labels[i] == j)) / n;
  }
  const Tensor dl = up(logits), dlab = up(labels), one = Tensor::full({1}, 1.0, DType::f32, Device::cuda);
  const Tensor probs = Tensor::empty({n * c}, DType::f32, Device::cuda), losses = Tensor::empty({n}, DType::f32, Device::cuda);
  const Tensor loss = Tensor::empty({1}, DType::f32, Device::cuda), grad = Tensor::empty({n * c}, DType::f32, Device::cuda);
  const Tensor bad = Tensor::full({1}, static_cast<double>(n), DType::i64, Device::cuda);
  auto forward = [&] {
    cuda::cross_entropy_forward(dl.data<float>(), dlab.data<int64_t>(), nullptr, probs.data<float>(),
                                losses.data<float>(), bad.data<int64_t>(), n, c);
    cuda::mean_of(losses.data<float>(), loss.data<float>(), n);
  };
  auto backward = [&] {
    cuda::cross_entropy_backward(probs.data<float>(), dlab.data<int64_t>(), nullptr, one.data<float>(), true,
                                 grad.data<float>(), n, c);
  };
  const double nc4 = 4.0 * static_cast<double>(n * c);
  const std::string shape = shape_name({n, c});
  forward();
  double r = worst_ratio(loss.to_vector<float>(), ref_loss, 1e-6, 1e-5);
  // Reads the logits and labels, writes probabilities and per-row losses, then reads those.
  st.add({"softmax_cross_entropy", "forward (softmax + loss) + mean", shape, "cross_entropy_.*|mean_kernel", r, 0,
          2 * nc4 + 8.0 * n + 8.0 * n, r <= 1},
         forward);
  backward();
  r = worst_ratio(grad.to_vector<float>(), ref_grad, 1e-7, 1e-4);
  // Reads probabilities and labels, writes the logits' gradient.
  st.add({"softmax_cross_entropy", "backward", shape, "cross_entropy_.*", r, 0, 2 * nc4 + 8.0 * n, r <= 1}, backward);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"sieve-kernel-study: the training step's hand-written CUDA kernels against their CPU references"};
  app.add_option("--only", o.only, "one kernel: bn_relu_forward, bn_relu_backward, batch_assembly, sgd_masked, "
                                   "softmax_cross_entropy");
  app.add_option("--out", o.out, "folder for kernels.md and kernels.json")->capture_default_str();
  app.add_option("--repeats", o.repeats, "timed launches per run")->check(CLI::Range(1, 10000))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    SIEVE_CHECK(cuda_available(), "a GPU is needed: ", cuda_device_description());
    Study st(o);
    // ResNet-20's first stage and MobileNetV2's widest expansion, at batch 128.
    bn_relu(st, 128, 16, 32, 32);
    bn_relu(st, 128, 960, 4, 4);
    assembly(st, 50000, 128);
    assembly(st, 50000, 1024);
    sgd(st, 272474);    // ResNet-20's parameters
    sgd(st, 11173962);  // ResNet-18's
    cross_entropy(st, 128, 10);
    cross_entropy(st, 65536, 100);
    return st.write();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sieve-kernel-study: %s\n", e.what());
    return 1;
  }
}
