// The one training loop every command and study reuses: seeded shuffling, fused batch
// assembly with augmentation, SGD over the flat parameter buffer, schedules per epoch or per
// step, optional subsets, per-sample loss weights and pruning masks, evaluation each epoch,
// per-sample hooks, atomic checkpoints each epoch and exact resume. On CUDA the epoch's steps
// never wait for the GPU and, after warm-up, replay one captured CUDA graph (see trainer.cpp).
#pragma once
#include <array>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "engine/parameters.h"
#include "engine/schedule.h"
#include "engine/sgd.h"
#include "models/model.h"

namespace sieve {

// A dataset's images (u8) and labels resident on the training device.
struct DeviceDataset {
  Tensor images;                // (N, C, H, W) u8
  std::vector<int64_t> labels;  // host copy
  int64_t num_classes = 0;
  std::array<float, 3> mean{}, std{};
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};
DeviceDataset to_device(const ImageDataset& data, Device device);

struct TrainConfig {
  int64_t epochs = 1;
  int64_t batch_size = 128;
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = false;
  std::string schedule = "cosine";  // constant | cosine | multistep | warmup_cosine
  int64_t t_max = 0;                // cosine period; 0 = epochs (or total steps when per_step)
  double eta_min = 0.0;
  int64_t warmup_epochs = 0;
  std::vector<int64_t> milestones;
  double gamma = 0.1;
  bool per_step = false;  // step the schedule every optimiser step instead of every epoch
  bool augment = true;    // RandomCrop(32, pad 4) + HFlip on the training set
  uint64_t seed = 0;      // shuffling, augmentation, dropout
  std::string checkpoint; // file written atomically after each epoch and resumed from; "" = none
  bool progress = true;   // one line per epoch on stderr
  // Evaluate the test set after every epoch; false: after the last one only (the other epochs'
  // test columns are NaN), for runs that only need the final model's accuracy.
  bool test_each_epoch = true;
  // CUDA: after two eager steps, capture the whole step (assembly, forward, backward, SGD) as one
  // CUDA graph and replay it (--cuda-graph on|off). Off: the same sync-free step, run eagerly.
  bool cuda_graph = true;
};

struct EpochStats {
  int64_t epoch = 0;
  double lr = 0, train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, seconds = 0, images_per_s = 0;
};

// An epoch's record as JSON (metrics.json, checkpoints) and back; reading checks every field and
// names `name` (the file) in its errors. NaN (no test set) is written as null and read back.
nlohmann::json epoch_json(const EpochStats& s);
std::vector<EpochStats> history_from_json(const nlohmann::json& list, const std::string& name);

// What a training checkpoint holds (Trainer writes it after every epoch), read back with every
// field checked: model tensors under "model.", the momentum buffer, and the metadata.
struct CheckpointState {
  StateDict model;
  Tensor momentum_buffer;
  int64_t epochs_done = 0, optimizer_steps = 0;
  std::string seed;  // as written, compared with the resuming run's
  std::vector<EpochStats> history;
};
struct SafetensorsFile;
CheckpointState read_checkpoint(const SafetensorsFile& file, const std::string& name);

struct EvalStats {
  double loss = 0, accuracy = 0;
};

// Sees each batch of a pass: dataset indices (host), labels used (host) and the model outputs.
using BatchHook = std::function<void(const std::vector<int64_t>& indices, const ModelOutput& out)>;

std::unique_ptr<LrSchedule> make_schedule(const TrainConfig& cfg, int64_t steps_per_epoch);

class Trainer {
 public:
  Trainer(Model& model, const DeviceDataset& train, const DeviceDataset* test, TrainConfig cfg);
  ~Trainer();

  void set_subset(std::vector<int64_t> indices);          // train on these dataset indices only
  void set_sample_weights(std::vector<float> weights);    // loss weight per dataset index
  void set_mask(const Tensor& flat_mask);                 // pruning mask over the flat parameters
  // Called after each epoch's training pass (before evaluation), e.g. for EL2N or forgetting.
  void on_epoch_end(std::function<void(int64_t epoch)> hook) { epoch_hook_ = std::move(hook); }
  // Sees every training batch's dataset indices and outputs (e.g. forgetting per presentation).
  void on_train_batch(BatchHook hook) { batch_hook_ = std::move(hook); }

  // One optimiser step on these dataset indices at learning rate lr, with augmentation drawn at
  // counter aug_counter; adds the batch's correct predictions to `correct` (i64 (1,) on the
  // device) and returns the mean loss (on CUDA, waiting for it). fit()'s CPU epochs are made of
  // these; its CUDA epochs of the sync-free step, which this one matches bit for bit.
  double train_step(const std::vector<int64_t>& idx, uint64_t aug_counter, double lr, const Tensor& correct,
                    int64_t epoch = 0, int64_t step = 0);

  // Trains cfg.epochs epochs (resuming from cfg.checkpoint when it exists) and returns the
  // history of every epoch, resumed ones included.
  std::vector<EpochStats> fit();
  // One training epoch (shuffle, steps at the schedule's lr; no evaluation, no checkpoint), as
  // fit() runs it; benchmarks time these. On CUDA a captured step graph lives until fit() ends
  // or the training set, weights or mask change.
  EpochStats run_epoch(int64_t epoch);

  EvalStats evaluate(const DeviceDataset& data, int64_t batch_size = 500);
  // The predicted class of every sample (eval mode, no augmentation), in index order.
  std::vector<int64_t> predict(const DeviceDataset& data, int64_t batch_size = 500);
  // Eval mode, no grad: every sample once in index order, optionally with augmentation drawn
  // from aug_seed; hook sees each batch.
  void for_each_batch(const DeviceDataset& data, bool augment, uint64_t aug_seed, const BatchHook& hook,
                      int64_t batch_size = 500);

  // Penultimate features (N, D) and logits (N, C) of every sample, eval mode, no augmentation,
  // on the training device.
  struct Extraction {
    Tensor features, logits;
  };
  Extraction extract(const DeviceDataset& data, int64_t batch_size = 500);

  FlatParameters& parameters() { return params_; }
  Sgd& optimizer() { return sgd_; }
  const std::vector<EpochStats>& history() const { return history_; }

 private:
  struct GpuSteps;
  EpochStats train_epoch(int64_t epoch, const LrSchedule& schedule, int64_t steps_per_epoch);
  void train_epoch_gpu(int64_t epoch, const std::vector<int64_t>& order, const LrSchedule& schedule,
                       int64_t steps_per_epoch, double& loss_sum, int64_t& correct, double& last_lr);
  ModelOutput gpu_step(GpuSteps& g, bool full, int64_t count);
  void check_halt(const GpuSteps& g, int64_t epoch);
  void save_checkpoint(int64_t epochs_done);
  int64_t load_checkpoint();  // epochs already done, 0 when there is no checkpoint

  Model& model_;
  const DeviceDataset& train_;
  const DeviceDataset* test_;
  TrainConfig cfg_;
  Device device_;
  FlatParameters params_;
  Sgd sgd_;
  std::vector<int64_t> subset_;
  std::vector<float> weights_;  // loss weight per dataset index, or empty
  std::function<void(int64_t)> epoch_hook_;
  BatchHook batch_hook_;
  std::vector<EpochStats> history_;
  std::unique_ptr<GpuSteps> gpu_;  // CUDA only
};

}  // namespace sieve
