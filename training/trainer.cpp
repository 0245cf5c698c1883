#include "training/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "datasets/augment.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/ops/loss.h"
#include "engine/parse.h"
#include "engine/safetensors.h"
#include "layers/layers.h"
#if SIEVE_WITH_CUDA
#include "training/step_cuda.h"
#endif

namespace sieve {

namespace {

// Seeded Fisher-Yates shuffle of `items` for one epoch (Philox stream seed ^ epoch tag).
void shuffle(std::vector<int64_t>& items, uint64_t seed, int64_t epoch) {
  Generator gen(seed ^ (0x5348554646ull << 20) ^ static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull);
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[gen.below(i)]);
}

// Counter ranges of the Philox streams of one epoch: augmentation and dropout never reuse one.
constexpr uint64_t kEpochStride = 1ull << 40;

// CUDA: eager full-size steps before the step is captured as a graph (library handles, plans,
// dropout's device counters and the allocator's cache exist by then, and SGD's first step,
// decided on the host, is behind us), and how often the host reads the halt flag.
constexpr int64_t kGraphWarmupSteps = 2;
constexpr int64_t kHaltCheckSteps = 100;

template <class T>
void upload(const Tensor& dst, const std::vector<T>& src) {
  SIEVE_CHECK(dst.numel() >= static_cast<int64_t>(src.size()), "trainer: upload of ", src.size(), " values into ",
              dst.numel());
  copy_bytes(dst.data<T>(), Device::cuda, src.data(), Device::cpu, src.size() * sizeof(T));
}

std::string fmt_duration(double s) {
  char buf[32];
  const int64_t t = static_cast<int64_t>(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", long(t / 3600), long(t % 3600 / 60));
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", long(t / 60), long(t % 60));
  return buf;
}

}  // namespace

DeviceDataset to_device(const ImageDataset& data, Device device) {
  DeviceDataset d;
  d.images = Tensor::from_vector(data.images, {data.size(), data.channels, data.height, data.width}, device);
  d.labels = data.labels;
  d.num_classes = data.num_classes;
  d.mean = data.mean, d.std = data.std;
  return d;
}

std::unique_ptr<LrSchedule> make_schedule(const TrainConfig& cfg, int64_t steps_per_epoch) {
  const int64_t unit = cfg.per_step ? steps_per_epoch : 1;
  const int64_t t_max = (cfg.t_max > 0 ? cfg.t_max : cfg.epochs) * unit;
  if (cfg.schedule == "constant") return constant_lr(cfg.lr);
  if (cfg.schedule == "cosine") return cosine_lr(cfg.lr, t_max, cfg.eta_min);
  if (cfg.schedule == "multistep") {
    std::vector<int64_t> m;
    for (int64_t e : cfg.milestones) m.push_back(e * unit);
    return multistep_lr(cfg.lr, m, cfg.gamma);
  }
  if (cfg.schedule == "warmup_cosine")
    return warmup_lr(cfg.lr, cfg.warmup_epochs * unit, cosine_lr(cfg.lr, t_max, cfg.eta_min));
  fail("--schedule: unknown schedule '", cfg.schedule, "' (known: constant, cosine, multistep, warmup_cosine)");
}

// The CUDA step's device state, at fixed addresses for as long as the training set and batch size
// stay (a captured graph keeps its pointers): the epoch's order, labels and loss weights, uploaded
// once per epoch, each step's learning rate, the epoch's first Philox counter, the step counter
// the step advances itself, and the epoch's sums and halt flag, read by the host at its end.
struct Trainer::GpuSteps {
  struct Batch {
    Tensor indices, labels, weights, counter;  // (b,) i64, (b,) i64, (b,) f32 or undefined, (1,) i64
  };
  int64_t n = 0, batch_size = 0;
  Tensor order, labels, weights, lrs, counter_base, step, loss_sum, halted, bad_loss, correct;
  Batch full, rest;  // a full batch's buffers, and those of the epoch's shorter last batch
  CudaGraph graph;
  int64_t eager_full_steps = 0;

  GpuSteps(int64_t n_, int64_t bs, bool weighted) : n(n_), batch_size(bs) {
    const Device d = Device::cuda;
    order = Tensor::empty({n}, DType::i64, d);
    labels = Tensor::empty({n}, DType::i64, d);
    if (weighted) weights = Tensor::empty({n}, DType::f32, d);
    lrs = Tensor::empty({(n + bs - 1) / bs}, DType::f32, d);
    counter_base = Tensor::zeros({1}, DType::i64, d);
    step = Tensor::zeros({1}, DType::i64, d);
    loss_sum = Tensor::zeros({1}, DType::f64, d);
    halted = Tensor::zeros({1}, DType::i64, d);
    bad_loss = Tensor::zeros({1}, DType::f32, d);
    correct = Tensor::zeros({1}, DType::i64, d);
    auto batch = [&](int64_t b) {
      return Batch{Tensor::empty({b}, DType::i64, d), Tensor::empty({b}, DType::i64, d),
                   weighted ? Tensor::empty({b}, DType::f32, d) : Tensor(), Tensor::zeros({1}, DType::i64, d)};
    };
    if (n >= bs) full = batch(bs);
    if (n % bs != 0) rest = batch(n % bs);
  }
};

Trainer::~Trainer() = default;

Trainer::Trainer(Model& model, const DeviceDataset& train, const DeviceDataset* test, TrainConfig cfg)
    : model_(model),
      train_(train),
      test_(test),
      cfg_(std::move(cfg)),
      device_(train.images.device()),
      params_((model.to(device_), flatten_parameters(model.named_parameters(), device_))),
      sgd_(params_.values, params_.grads,
           SgdOptions{cfg_.lr, cfg_.momentum, 0.0, cfg_.weight_decay, cfg_.nesterov}) {
  SIEVE_CHECK(cfg_.epochs >= 1, "--epochs must be >= 1, got ", cfg_.epochs);
  SIEVE_CHECK(cfg_.batch_size >= 1, "--batch-size must be >= 1, got ", cfg_.batch_size);
  SIEVE_CHECK(cfg_.lr >= 0 && std::isfinite(cfg_.lr), "--lr must be a finite value >= 0");
  SIEVE_CHECK(train.size() > 0, "training set is empty");
  if (test) SIEVE_CHECK(test->images.device() == device_, "test set is on another device than the training set");
  subset_.resize(static_cast<size_t>(train.size()));
  for (int64_t i = 0; i < train.size(); ++i) subset_[i] = i;
}

void Trainer::set_subset(std::vector<int64_t> indices) {
  SIEVE_CHECK(!indices.empty(), "trainer: empty training subset");
  for (int64_t i : indices)
    SIEVE_CHECK(i >= 0 && i < train_.size(), "trainer: subset index ", i, " outside a dataset of ", train_.size());
  subset_ = std::move(indices);
  gpu_.reset();
}

void Trainer::set_sample_weights(std::vector<float> weights) {
  SIEVE_CHECK(static_cast<int64_t>(weights.size()) == train_.size(), "trainer: ", weights.size(),
              " sample weights for ", train_.size(), " samples");
  weights_ = std::move(weights);
  gpu_.reset();
}

void Trainer::set_mask(const Tensor& flat_mask) {
  gpu_.reset();  // a captured graph would keep the old mask's address
  sgd_.set_mask(flat_mask.to(device_));
}

EpochStats Trainer::run_epoch(int64_t epoch) {
  const int64_t n = static_cast<int64_t>(subset_.size());
  const int64_t steps_per_epoch = (n + cfg_.batch_size - 1) / cfg_.batch_size;
  return train_epoch(epoch, *make_schedule(cfg_, steps_per_epoch), steps_per_epoch);
}

EpochStats Trainer::train_epoch(int64_t epoch, const LrSchedule& schedule, int64_t steps_per_epoch) {
  const auto start = std::chrono::steady_clock::now();
  model_.train();
  model_.for_each_module([&](Module& m) {
    if (auto* d = dynamic_cast<Dropout*>(&m)) d->set_offset(static_cast<uint64_t>(epoch) * kEpochStride);
  });
  std::vector<int64_t> order = subset_;
  shuffle(order, cfg_.seed, epoch);
  const int64_t n = static_cast<int64_t>(order.size());
  double loss_sum = 0, lr = 0;
  int64_t correct_count = 0;
  if (device_ == Device::cuda) {
    train_epoch_gpu(epoch, order, schedule, steps_per_epoch, loss_sum, correct_count, lr);
  } else {
    Tensor correct = Tensor::zeros({1}, DType::i64, device_);
    lr = schedule.lr(cfg_.per_step ? epoch * steps_per_epoch : epoch);
    for (int64_t b = 0, step = 0; b < n; b += cfg_.batch_size, ++step) {
      if (cfg_.per_step) lr = schedule.lr(epoch * steps_per_epoch + step);
      const int64_t bs = std::min(cfg_.batch_size, n - b);
      const std::vector<int64_t> idx(order.begin() + b, order.begin() + b + bs);
      const uint64_t aug_counter = static_cast<uint64_t>(epoch) * kEpochStride + static_cast<uint64_t>(b);
      loss_sum += train_step(idx, aug_counter, lr, correct, epoch, step) * static_cast<double>(bs);
    }
    correct_count = correct.to_vector<int64_t>()[0];
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EpochStats s;
  s.epoch = epoch + 1;
  s.lr = lr;
  s.train_loss = loss_sum / static_cast<double>(n);
  s.train_acc = static_cast<double>(correct_count) / static_cast<double>(n);
  s.seconds = secs;
  s.images_per_s = static_cast<double>(n) / std::max(secs, 1e-9);
  return s;
}

// The CUDA epoch: the order, labels, loss weights and learning rates go up once; each step stages
// its slice on the device, keeps its loss and correct count there and raises the halt flag on a
// non-finite loss before its update (SGD then changes nothing until the host, which reads the
// flag every kHaltCheckSteps steps and at the end, stops the run). Full-size steps replay one
// captured CUDA graph after kGraphWarmupSteps eager ones, unless --cuda-graph off or a batch hook
// needs every step's outputs on the host.
void Trainer::train_epoch_gpu(int64_t epoch, const std::vector<int64_t>& order, const LrSchedule& schedule,
                              int64_t steps_per_epoch, double& loss_sum, int64_t& correct, double& last_lr) {
  const int64_t n = static_cast<int64_t>(order.size()), bs = cfg_.batch_size, steps = (n + bs - 1) / bs;
  if (!gpu_ || gpu_->n != n || gpu_->batch_size != bs) {
    gpu_.reset();
    gpu_ = std::make_unique<GpuSteps>(n, bs, !weights_.empty());
  }
  GpuSteps& g = *gpu_;
  std::vector<int64_t> labels(static_cast<size_t>(n));
  std::vector<float> weights(weights_.empty() ? 0 : static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    // Checked here, on the host: the step itself never reads a result back to check it.
    labels[i] = train_.labels[order[i]];
    SIEVE_CHECK(labels[i] >= 0 && labels[i] < train_.num_classes, "trainer: sample ", order[i], " has label ",
                labels[i], " outside 0..", train_.num_classes - 1);
    if (!weights.empty()) weights[i] = weights_[order[i]];
  }
  std::vector<float> lrs(static_cast<size_t>(steps));
  for (int64_t k = 0; k < steps; ++k)
    lrs[k] = static_cast<float>(schedule.lr(cfg_.per_step ? epoch * steps_per_epoch + k : epoch));
  upload(g.order, order);
  upload(g.labels, labels);
  if (!weights.empty()) upload(g.weights, weights);
  upload(g.lrs, lrs);
  g.counter_base.fill_(static_cast<double>(static_cast<uint64_t>(epoch) * kEpochStride));  // exact below 2^53
  for (Tensor* t : {&g.step, &g.loss_sum, &g.halted, &g.bad_loss, &g.correct}) t->zero_();
  sgd_.set_halt_flag(g.halted);

  const bool graphs = cfg_.cuda_graph && !batch_hook_;
  for (int64_t k = 0; k < steps; ++k) {
    const int64_t count = std::min(bs, n - k * bs);
    const bool full = count == bs;
    if (full && graphs && g.graph.ready()) {
      ProfileRange range("step (graph replay)");
      g.graph.replay();
      sgd_.count_replayed_step();
    } else if (full && graphs && g.eager_full_steps >= kGraphWarmupSteps && sgd_.steps() > 0) {
      g.graph.begin_capture();
      try {
        gpu_step(g, true, count);
      } catch (...) {
        g.graph.reset();
        throw;
      }
      g.graph.end_capture();
      g.graph.replay();  // the capture ran nothing: this is step k (step() already counted it)
    } else {
      const ModelOutput out = gpu_step(g, full, count);
      if (full) ++g.eager_full_steps;
      if (batch_hook_) batch_hook_(std::vector<int64_t>(order.begin() + k * bs, order.begin() + k * bs + count), out);
    }
    if ((k + 1) % kHaltCheckSteps == 0) check_halt(g, epoch);
  }
  check_halt(g, epoch);
  loss_sum = g.loss_sum.to_vector<double>()[0];
  correct = g.correct.to_vector<int64_t>()[0];
  last_lr = lrs.back();
  sgd_.set_lr(last_lr);  // the host's copy follows the device's
}

// One step of train_epoch_gpu, eager or under capture: nothing in it waits for the GPU (the scope
// turns any copy to or from the host into an error) or takes a per-step value from the host.
ModelOutput Trainer::gpu_step(GpuSteps& g, bool full, int64_t count) {
  HostSyncFreeScope no_host_sync;
  ProfileRange range("step");
  const GpuSteps::Batch& b = full ? g.full : g.rest;
  ModelOutput out;
  Tensor x, loss;
  {
    ProfileRange r("assemble");
    SIEVE_IF_CUDA(cuda::stage_step(g.step.data<int64_t>(), g.batch_size, count, g.order.data<int64_t>(),
                                   g.labels.data<int64_t>(), g.weights.defined() ? g.weights.data<float>() : nullptr,
                                   g.lrs.data<float>(), g.counter_base.data<int64_t>(), b.indices.data<int64_t>(),
                                   b.labels.data<int64_t>(), b.weights.defined() ? b.weights.data<float>() : nullptr,
                                   b.counter.data<int64_t>(), sgd_.lr_on_device().data<float>()));
    x = assemble_staged_batch(train_.images, b.indices, b.counter,
                              AugmentParams{cfg_.augment, 4, cfg_.seed, 0, train_.mean, train_.std});
  }
  {
    ProfileRange r("forward");
    out = model_.forward(x);
    loss = cross_entropy(out.logits, b.labels, Reduction::mean, b.weights);
    SIEVE_IF_CUDA(cuda::account_loss(loss.data<float>(), count, g.step.data<int64_t>(), g.loss_sum.data<double>(),
                                     g.halted.data<int64_t>(), g.bad_loss.data<float>()));
  }
  {
    ProfileRange r("backward");
    sgd_.zero_grad();
    autograd::backward(loss);
  }
  {
    ProfileRange r("sgd");
    sgd_.step();
  }
  autograd::NoGradGuard no_grad;
  add_correct_count(out.logits, b.labels, g.correct);
  return out;
}

void Trainer::check_halt(const GpuSteps& g, int64_t epoch) {
  const int64_t halted = g.halted.to_vector<int64_t>()[0];
  if (halted != 0)
    fail("training diverged: loss is ", g.bad_loss.to_vector<float>()[0], " at epoch ", epoch + 1, ", batch ", halted,
         " (lower --lr?)");
}

double Trainer::train_step(const std::vector<int64_t>& idx, uint64_t aug_counter, double lr, const Tensor& correct,
                           int64_t epoch, int64_t step) {
  sgd_.set_lr(lr);
  const int64_t bs = static_cast<int64_t>(idx.size());
  std::vector<int64_t> labels(static_cast<size_t>(bs));
  std::vector<float> w(weights_.empty() ? 0 : static_cast<size_t>(bs));
  for (int64_t i = 0; i < bs; ++i) {
    labels[i] = train_.labels[idx[i]];
    if (!w.empty()) w[i] = weights_[idx[i]];
  }
  AugmentParams ap{cfg_.augment, 4, cfg_.seed, aug_counter, train_.mean, train_.std};
  const Tensor x = assemble_batch(train_.images, Tensor::from_vector(idx, {bs}, device_), ap);
  const Tensor y = Tensor::from_vector(labels, {bs}, device_);
  const ModelOutput out = model_.forward(x);
  const Tensor loss = cross_entropy(out.logits, y, Reduction::mean,
                                    w.empty() ? Tensor() : Tensor::from_vector(w, {bs}, device_));
  // Checked before the update, so a non-finite loss never reaches the weights.
  const double l = loss.item();
  if (!std::isfinite(l)) {
    fail("training diverged: loss is ", l, " at epoch ", epoch + 1, ", batch ", step + 1, " (lower --lr?)");
  }
  sgd_.zero_grad();
  autograd::backward(loss);
  sgd_.step();
  autograd::NoGradGuard no_grad;
  add_correct_count(out.logits, y, correct);
  if (batch_hook_) batch_hook_(idx, out);
  return l;
}

std::vector<EpochStats> Trainer::fit() {
  const int64_t n = static_cast<int64_t>(subset_.size());
  const int64_t steps_per_epoch = (n + cfg_.batch_size - 1) / cfg_.batch_size;
  const auto schedule = make_schedule(cfg_, steps_per_epoch);
  const int64_t done = load_checkpoint();
  if (done > 0 && cfg_.progress)
    std::fprintf(stderr, "resumed from %s after epoch %ld\n", cfg_.checkpoint.c_str(), long(done));
  for (int64_t epoch = done; epoch < cfg_.epochs; ++epoch) {
    EpochStats s = train_epoch(epoch, *schedule, steps_per_epoch);
    if (epoch_hook_) epoch_hook_(epoch);
    const bool tested = test_ && (cfg_.test_each_epoch || epoch + 1 == cfg_.epochs);
    if (tested) {
      const EvalStats e = evaluate(*test_);
      s.test_loss = e.loss, s.test_acc = e.accuracy;
    } else if (test_) {
      s.test_loss = s.test_acc = std::numeric_limits<double>::quiet_NaN();
    }
    history_.push_back(s);
    if (!cfg_.checkpoint.empty()) save_checkpoint(epoch + 1);
    if (cfg_.progress) {
      const double eta = s.seconds * static_cast<double>(cfg_.epochs - epoch - 1);
      std::fprintf(stderr, "epoch %ld/%ld  lr %.5f  loss %.4f  acc %.4f", long(epoch + 1), long(cfg_.epochs), s.lr,
                   s.train_loss, s.train_acc);
      if (tested) std::fprintf(stderr, "  test loss %.4f  test acc %.4f", s.test_loss, s.test_acc);
      std::fprintf(stderr, "  %.0f img/s  %.1fs/epoch  ETA %s\n", s.images_per_s, s.seconds, fmt_duration(eta).c_str());
    }
  }
  gpu_.reset();  // the step graph's pool and the epoch buffers go back to the allocator
  return history_;
}

void Trainer::for_each_batch(const DeviceDataset& data, bool augment, uint64_t aug_seed, const BatchHook& hook,
                             int64_t batch_size) {
  autograd::NoGradGuard no_grad;
  model_.eval();
  for (int64_t b = 0; b < data.size(); b += batch_size) {
    const int64_t bs = std::min(batch_size, data.size() - b);
    std::vector<int64_t> idx(static_cast<size_t>(bs));
    for (int64_t i = 0; i < bs; ++i) idx[i] = b + i;
    AugmentParams ap{augment, 4, aug_seed, static_cast<uint64_t>(b), data.mean, data.std};
    const Tensor x = assemble_batch(data.images, Tensor::from_vector(idx, {bs}, device_), ap);
    hook(idx, model_.forward(x));
  }
}

Trainer::Extraction Trainer::extract(const DeviceDataset& data, int64_t batch_size) {
  Extraction e;
  for_each_batch(data, false, 0, [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    if (!e.features.defined()) {
      e.features = Tensor::empty({data.size(), out.features.dim(1)}, out.features.dtype(), device_);
      e.logits = Tensor::empty({data.size(), out.logits.dim(1)}, out.logits.dtype(), device_);
    }
    const int64_t first = idx.front();  // batches are consecutive index ranges
    e.features.slice(first * out.features.dim(1), out.features.shape()).copy_(out.features);
    e.logits.slice(first * out.logits.dim(1), out.logits.shape()).copy_(out.logits);
  }, batch_size);
  return e;
}

std::vector<int64_t> Trainer::predict(const DeviceDataset& data, int64_t batch_size) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(data.size()));
  for_each_batch(data, false, 0, [&](const std::vector<int64_t>&, const ModelOutput& o) {
    const std::vector<int64_t> p = argmax(o.logits).to_vector<int64_t>();
    out.insert(out.end(), p.begin(), p.end());
  }, batch_size);
  return out;
}

EvalStats Trainer::evaluate(const DeviceDataset& data, int64_t batch_size) {
  double loss_sum = 0;
  Tensor correct = Tensor::zeros({1}, DType::i64, device_);
  for_each_batch(data, false, 0, [&](const std::vector<int64_t>& idx, const ModelOutput& out) {
    std::vector<int64_t> labels(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) labels[i] = data.labels[idx[i]];
    const Tensor y = Tensor::from_vector(labels, {static_cast<int64_t>(idx.size())}, device_);
    loss_sum += cross_entropy(out.logits, y, Reduction::mean).item() * static_cast<double>(idx.size());
    add_correct_count(out.logits, y, correct);
  }, batch_size);
  return {loss_sum / static_cast<double>(data.size()), correct.item() / static_cast<double>(data.size())};
}

void Trainer::save_checkpoint(int64_t epochs_done) {
  TensorMap t;
  for (auto& [name, value] : model_.state_dict()) t["model." + name] = value;
  t["optimizer.momentum_buffer"] = sgd_.momentum_buffer();
  nlohmann::json hist = nlohmann::json::array();
  for (const EpochStats& s : history_) hist.push_back(epoch_json(s));
  save_safetensors(cfg_.checkpoint, t,
                   {{"epochs_done", std::to_string(epochs_done)},
                    {"optimizer_steps", std::to_string(sgd_.steps())},
                    {"seed", std::to_string(cfg_.seed)},
                    {"history", hist.dump()}});
}

nlohmann::json epoch_json(const EpochStats& s) {
  return {{"epoch", s.epoch},         {"lr", s.lr},         {"train_loss", s.train_loss},
          {"train_acc", s.train_acc}, {"test_loss", s.test_loss}, {"test_acc", s.test_acc},
          {"seconds", s.seconds},     {"images_per_s", s.images_per_s}};
}

std::vector<EpochStats> history_from_json(const nlohmann::json& list, const std::string& name) {
  SIEVE_CHECK(list.is_array(), name, ": the training history must be a list of epochs, found ", list.type_name());
  std::vector<EpochStats> history;
  for (const nlohmann::json& h : list) {
    const std::string what = cat(name, " (history entry ", history.size(), ")");
    history.push_back({json_int(h, "epoch", what, 0, INT32_MAX), json_number(h, "lr", what),
                       json_number(h, "train_loss", what), json_number(h, "train_acc", what),
                       json_number(h, "test_loss", what), json_number(h, "test_acc", what),
                       json_number(h, "seconds", what), json_number(h, "images_per_s", what)});
  }
  return history;
}

CheckpointState read_checkpoint(const SafetensorsFile& f, const std::string& name) {
  auto meta = [&](const std::string& key) {
    auto it = f.metadata.find(key);
    SIEVE_CHECK(it != f.metadata.end(), name, ": not a sieve training checkpoint (no '", key, "')");
    return it->second;
  };
  CheckpointState c;
  for (const auto& [key, value] : f.tensors)
    if (key.rfind("model.", 0) == 0) c.model[key.substr(6)] = value;
  const auto mom = f.tensors.find("optimizer.momentum_buffer");
  SIEVE_CHECK(mom != f.tensors.end(), name, ": no optimizer state");
  c.momentum_buffer = mom->second;
  c.seed = meta("seed");
  c.epochs_done = parse_int(meta("epochs_done"), cat(name, ": metadata epochs_done"), 0, INT32_MAX);
  c.optimizer_steps = parse_int(meta("optimizer_steps"), cat(name, ": metadata optimizer_steps"), 0, INT64_MAX);
  c.history = history_from_json(parse_json(meta("history"), cat(name, ": metadata history")), name);
  SIEVE_CHECK(static_cast<int64_t>(c.history.size()) == c.epochs_done, name, ": the history holds ",
              c.history.size(), " epochs but epochs_done is ", c.epochs_done);
  return c;
}

int64_t Trainer::load_checkpoint() {
  if (cfg_.checkpoint.empty() || !std::filesystem::exists(cfg_.checkpoint)) return 0;
  const CheckpointState c = read_checkpoint(load_safetensors(cfg_.checkpoint), cfg_.checkpoint);
  SIEVE_CHECK(c.seed == std::to_string(cfg_.seed), cfg_.checkpoint, ": written with --seed ", c.seed,
              ", this run uses ", cfg_.seed, " (use another --out to start afresh)");
  SIEVE_CHECK(c.epochs_done <= cfg_.epochs, cfg_.checkpoint, ": holds ", c.epochs_done, " epochs, this run trains ",
              cfg_.epochs, " (use another --out to start afresh)");
  model_.load_state_dict(c.model);
  sgd_.restore(c.momentum_buffer.to(device_), c.optimizer_steps);
  history_ = c.history;
  return c.epochs_done;
}

}  // namespace sieve
