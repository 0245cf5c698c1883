#include "studies/coreset_study.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>

#include "attacks/attacks.h"
#include "defense/pruning.h"
#include "engine/io.h"
#include "engine/py_random.h"
#include "engine/safetensors.h"
#include "models/model.h"
#include "studies/plot.h"
#include "studies/run_info.h"
#include "studies/state_files.h"
#include "selection/selection.h"

namespace sieve {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The seeds of the study's committed replicates (reference/coreset_study_backdoor_all_replicates.csv).
constexpr uint64_t kPublishedSeeds[] = {1608637542, 1273642419, 1935803228};
constexpr double kPoisonFraction = 0.02;
constexpr int64_t kTarget = 0;

// The command-line name and the study's name of each method, in the study's order.
struct Method {
  std::string cli, name;
};
const std::vector<Method>& study_methods() {
  static const std::vector<Method> m{
      {"full", "full"}, {"random", "random"}, {"el2n", "el2n"}, {"forgetting", "forget"}, {"craig", "craig"}};
  return m;
}

size_t method_rank(const std::string& name) {
  const auto& m = study_methods();
  return std::find_if(m.begin(), m.end(), [&](const Method& x) { return x.name == name; }) - m.begin();
}

// The study's metrics in its column order, then sieve's extra ones.
using Field = double StudyRow::*;
const std::vector<std::pair<std::string, Field>>& study_metrics() {
  static const std::vector<std::pair<std::string, Field>> m{
      {"clean_acc", &StudyRow::clean_acc},   {"asr", &StudyRow::asr},
      {"poison_retention", &StudyRow::poison_retention}, {"pruned_acc", &StudyRow::pruned_acc},
      {"pruned_asr", &StudyRow::pruned_asr}, {"pruned_test_loss", &StudyRow::pruned_test_loss}};
  return m;
}
const std::vector<std::pair<std::string, Field>>& extra_metrics() {
  static const std::vector<std::pair<std::string, Field>> m{{"asr_nontarget", &StudyRow::asr_nontarget},
                                                            {"pruned_asr_nontarget", &StudyRow::pruned_asr_nontarget},
                                                            {"pruned_kept_fraction", &StudyRow::pruned_kept_fraction}};
  return m;
}

const char* const kReplicateHeader =
    "method,replicate_idx,seed,subset_size,clean_acc,asr,poison_kept,poison_total,poison_retention,pruned_acc,"
    "pruned_asr,pruned_test_loss";
const char* const kLossHistoryHeader =
    "method,epoch,train_loss_mean,train_loss_std,train_acc_mean,train_acc_std,test_loss_mean,test_loss_std,"
    "test_acc_mean,test_acc_std";

// method, then <metric>_mean,<metric>_std per study metric (the published header); with_extras
// appends sieve's metrics the same way and the number of replicates.
std::string aggregated_header(bool with_extras) {
  std::string h = "method";
  for (const auto& [name, field] : study_metrics()) h += "," + name + "_mean," + name + "_std";
  if (with_extras) {
    for (const auto& [name, field] : extra_metrics()) h += "," + name + "_mean," + name + "_std";
    h += ",replicates";
  }
  return h;
}

// Python's repr of a float, as the study's files hold them: the shortest text that reads back
// exactly, "1.0" rather than "1"; NaN (a value not reached) is an empty field, as pandas writes it.
std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  std::string s(buf, end);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

// Mean and population standard deviation (ddof = 0, numpy's default, as the study computes it)
// of the values reached; NaN when there are none.
struct MeanStd {
  double mean = NAN, std = NAN;
};
MeanStd mean_std(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values)
    if (!std::isnan(x)) v.push_back(x);
  if (v.empty()) return {};
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double sq = 0;
  for (double x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / n)};
}

// Comma-separated fields, empty ones included ("a,,b," -> a, "", b, "").
std::vector<std::string> split_fields(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  if (!s.empty() && s.back() == ',') out.push_back("");
  return out;
}


// Everything the cells of one study share.
struct Study {
  const StudyConfig& o;
  Protocol protocol;
  ImageDataset train, test;
  DeviceDataset test_set, asr_set;  // clean test images; all of them with the test trigger
  int64_t k = 0;                    // subset size: half the training set

  std::unique_ptr<Model> model(uint64_t seed) const {
    ModelConfig mc;
    mc.num_classes = train.num_classes, mc.in_channels = train.channels, mc.seed = seed;
    return make_model(o.model, mc);
  }
};

// One replicate: its seed draws the poisons, every model's initial weights and the shuffling.
struct Replicate {
  int64_t idx = 0;
  uint64_t seed = 0;
  PoisonedSet poisoned;
  DeviceDataset train;
  // The seed protocol's EL2N and forgetting come from one scoring run (seed_protocol_scores):
  // the first of the two cells to run it leaves the scores here for the other.
  std::optional<SeedProtocolScores> seed_scores;
};

// The seed protocol draws the poisons as the study did (CPython's random.sample, seeded with the
// replicate's seed); the reference protocol with sieve's own generator.
PoisonDraw poison_draw(Protocol protocol) { return protocol == Protocol::seed ? PoisonDraw::python : PoisonDraw::sieve; }

Replicate make_replicate(const Study& s, int64_t idx, uint64_t seed, Device device) {
  Replicate r;
  r.idx = idx, r.seed = seed;
  // Study 1's train trigger: the red square on rows/cols 25..31 of the raw image.
  r.poisoned = poison_dataset(s.train, red_square_trigger(25, 31),
                              {kPoisonFraction, kTarget, true, seed, poison_draw(s.protocol)});
  r.train = to_device(r.poisoned.data, device);
  return r;
}

// The study's recipe: SGD 0.1 / 0.9 / 5e-4, cosine over the run down to 1e-5, augmentation.
TrainConfig recipe(const Study& s, int64_t epochs, int64_t batch_size, uint64_t seed, const fs::path& checkpoint) {
  TrainConfig tc;
  tc.epochs = epochs, tc.batch_size = batch_size, tc.seed = seed;
  tc.lr = 0.1, tc.momentum = 0.9, tc.weight_decay = 5e-4;
  tc.schedule = "cosine", tc.t_max = epochs, tc.eta_min = 1e-5;
  tc.augment = true;
  tc.checkpoint = checkpoint.string();
  tc.cuda_graph = s.o.cuda_graph;
  return tc;
}

// Trains on the selection only. CRAIG's cluster sizes become per-sample loss weights scaled to
// mean 1 over the selection: the trainer's weighted loss divides by the batch size, not by the
// sum of the weights, so the loss keeps the scale of unweighted training and the learning rate
// keeps its meaning.
void use_selection(Trainer& t, const Selection& sel, int64_t n) {
  t.set_subset(sel.indices);
  if (sel.weights.empty()) return;
  const double sum = std::accumulate(sel.weights.begin(), sel.weights.end(), 0.0);
  SIEVE_CHECK(sum > 0, "study: the selection's weights sum to ", sum);
  const double scale = static_cast<double>(sel.indices.size()) / sum;
  std::vector<float> w(static_cast<size_t>(n), 0.0f);
  for (size_t i = 0; i < sel.indices.size(); ++i) w[sel.indices[i]] = static_cast<float>(sel.weights[i] * scale);
  t.set_sample_weights(std::move(w));
}

// The study's ASR (every test image with the trigger, the fraction predicted as the target) and
// the standard one (non-target images only).
std::pair<double, double> attack_rates(Trainer& t, const Study& s) {
  const std::vector<int64_t> predicted = t.predict(s.asr_set);
  return {attack_success_rate(predicted, s.test.labels, kTarget, true),
          attack_success_rate(predicted, s.test.labels, kTarget, false)};
}

StateDict checkpoint_model(const fs::path& path) {
  const SafetensorsFile f = load_safetensors(path.string());
  StateDict state;
  for (const auto& [name, value] : f.tensors)
    if (name.rfind("model.", 0) == 0) state[name.substr(6)] = value;
  SIEVE_CHECK(!state.empty(), path.string(), ": not a sieve training checkpoint (no model state)");
  return state;
}

Selection make_selection(const Study& s, const std::string& method, Replicate& rep) {
  const int64_t n = rep.train.size();
  if (method == "full") {
    Selection all;
    all.indices.resize(static_cast<size_t>(n));
    std::iota(all.indices.begin(), all.indices.end(), int64_t{0});
    return all;
  }
  if (method == "random") return select_random(n, s.k, rep.seed, s.protocol);
  // The scoring models follow the study's recipe; the reference protocol scores early in a normal
  // run, so there the schedule spans the normal run's epochs.
  const SelectionContext c{.make_model = [&s](uint64_t seed) { return s.model(seed); },
                           .train = rep.train,
                           .base = recipe(s, s.o.epochs, 128, rep.seed, ""),
                           .protocol = s.protocol,
                           .k = s.k,
                           .score_epochs = s.o.score_epochs,
                           .craig_epochs = s.o.craig_epochs};
  if (s.protocol == Protocol::seed && (method == "el2n" || method == "forget")) {
    if (!rep.seed_scores) rep.seed_scores = seed_protocol_scores(c);
    return keep_by_score(method == "el2n" ? rep.seed_scores->el2n : rep.seed_scores->forgetting, s.k, false);
  }
  if (method == "el2n") return select_el2n(c);
  if (method == "forget") return select_forgetting(c);
  return select_craig(c);
}

Selection selection_stage(const Study& s, const std::string& method, Replicate& rep, const fs::path& dir,
                          const std::string& cell) {
  const fs::path path = dir / "selection.json";
  if (fs::exists(path)) {
    SelectionRecord r = read_selection(load_json(path), path.string(), rep.train.size());
    return {std::move(r.indices), std::move(r.weights), {}};
  }
  const Selection sel = make_selection(s, method, rep);
  int64_t kept = 0;
  for (int64_t i : sel.indices) kept += rep.poisoned.is_poison[i];
  const auto total = static_cast<int64_t>(rep.poisoned.poison_indices.size());
  const double retention = total ? static_cast<double>(kept) / static_cast<double>(total) : NAN;
  json record = {{"method", method}, {"subset_size", sel.indices.size()}, {"poison_kept", kept},
                 {"poison_total", total}, {"poison_retention", retention}};
  if (method == "random")
    record["draw"] = s.protocol == Protocol::seed
                         ? "python: random.seed(seed); random.sample(range(n), k), the poisons' seed and stream"
                         : "sieve: Fisher-Yates on Generator(seed), independent of the poison draw";
  if (sel.cut) {
    record["cut"] = {{"zero_scores", sel.cut->zero_scores}, {"cut_score", sel.cut->cut_score},
                     {"tied_at_cut", sel.cut->tied_at_cut}, {"tied_kept", sel.cut->tied_kept},
                     {"ties", "broken by the lower index"}};
    std::fprintf(stderr, "sieve study: %s: %ld samples score exactly 0; cut at score %.6g, %ld samples tied there, %ld "
                 "of them kept (lower indices)\n", cell.c_str(), long(sel.cut->zero_scores), sel.cut->cut_score,
                 long(sel.cut->tied_at_cut), long(sel.cut->tied_kept));
  }
  record["indices"] = sel.indices;
  record["weights"] = sel.weights;
  save_json(path, record);
  std::fprintf(stderr, "sieve study: %s: %zu images selected, %ld of %ld poisons kept (%.4f)\n", cell.c_str(),
               sel.indices.size(), long(kept), long(total), retention);
  return sel;
}

// Training on the selection from the replicate's initial weights.
json dense_stage(const Study& s, const Selection& sel, const Replicate& rep, const fs::path& dir,
                 const std::string& cell) {
  const fs::path dd = dir / "dense";
  if (fs::exists(dd / "result.json")) return load_json(dd / "result.json");
  fs::create_directories(dd);
  auto model = s.model(rep.seed);
  Trainer t(*model, rep.train, &s.test_set, recipe(s, s.o.epochs, 128, rep.seed, dd / "checkpoint.safetensors"));
  use_selection(t, sel, rep.train.size());
  std::fprintf(stderr, "sieve study: %s: training %ld epochs on %zu images\n", cell.c_str(), long(s.o.epochs),
               sel.indices.size());
  const std::vector<EpochStats> h = t.fit();
  write_history(dd.string(), h, cell + " on its selection");
  const auto [asr, asr_nontarget] = attack_rates(t, s);
  const json res = {{"clean_acc", h.back().test_acc}, {"test_loss", h.back().test_loss}, {"asr", asr},
                    {"asr_nontarget", asr_nontarget}};
  save_json(dd / "result.json", res);
  std::fprintf(stderr, "sieve study: %s: clean acc %.4f, ASR %.4f (non-target %.4f)\n", cell.c_str(),
               h.back().test_acc, asr, asr_nontarget);
  return res;
}

void save_mask(const fs::path& path, const Tensor& mask) {
  save_safetensors(path.string(), {{"mask", mask.to(Device::cpu).to(DType::u8)}});
}
Tensor load_mask(const fs::path& path) {
  const SafetensorsFile f = load_safetensors(path.string());
  SIEVE_CHECK(f.tensors.count("mask"), path.string(), ": not a pruning mask (no 'mask' tensor)");
  return f.tensors.at("mask").to(DType::f32);
}

json sparsity_json(const SparsityReport& r) {
  json layers = json::array();
  for (size_t i = 0; i < r.names.size(); ++i)
    layers.push_back({{"name", r.names[i]}, {"kept", r.kept[i]}, {"total", r.total[i]},
                      {"kept_fraction", static_cast<double>(r.kept[i]) / static_cast<double>(r.total[i])}});
  return {{"kept_fraction", r.kept_fraction}, {"layers", layers}};
}

// IMP with rewinding on the selection. The rewind point is a fresh model (the replicate's initial
// weights) after one epoch at constant lr 0.1, batch 256. Each round prunes, rewinds to that
// point, applies the mask and trains imp_epochs epochs at batch 256 (cosine T_max = imp_epochs),
// the mask holding pruned weights at 0 through every step.
//   seed protocol (the study's code): per layer, 30% of the surviving weights; the first mask
//   from the rewind-point weights, later ones from the previous round's trained weights.
//   reference protocol (Frankle et al., open_lth): globally, 20% of the surviving weights, always
//   from trained weights: the first mask from the cell's dense run (open_lth's level 0).
// Returns the last round's result; writes every round's sparsity per layer to sparsity.json.
json imp_stage(const Study& s, const Selection& sel, const Replicate& rep, const fs::path& dir,
               const std::string& cell) {
  const fs::path imp = dir / "imp";
  fs::create_directories(imp);
  const bool seed_protocol = s.protocol == Protocol::seed;
  const double fraction = seed_protocol ? 0.3 : 0.2;
  const PruneScope scope = seed_protocol ? PruneScope::per_layer : PruneScope::global;
  // The one-epoch run's checkpoint is the rewind point; a finished one is not trained again.
  const fs::path rewind_path = imp / "rewind.safetensors";
  if (!fs::exists(rewind_path)) {
    auto model = s.model(rep.seed);
    TrainConfig tc = recipe(s, 1, 256, rep.seed, rewind_path);
    tc.schedule = "constant";
    Trainer t(*model, rep.train, nullptr, tc);
    use_selection(t, sel, rep.train.size());
    t.fit();
  }
  const StateDict rewind = checkpoint_model(rewind_path);
  Tensor mask;
  json rounds = json::array(), per_round = json::array();
  for (int64_t r = 1; r <= s.o.imp_rounds; ++r) {
    const fs::path rd = imp / ("round-" + std::to_string(r));
    const std::string what = cell + " IMP round " + std::to_string(r);
    fs::create_directories(rd);
    const fs::path mask_path = rd / "mask.safetensors";
    if (fs::exists(mask_path)) {
      mask = load_mask(mask_path);
    } else {
      StateDict source;
      if (r > 1) source = checkpoint_model(imp / ("round-" + std::to_string(r - 1)) / "checkpoint.safetensors");
      else if (seed_protocol) source = rewind;
      else source = checkpoint_model(dir / "dense" / "checkpoint.safetensors");
      auto model = s.model(rep.seed);
      model->load_state_dict(source);
      const FlatParameters p = flatten_parameters(model->named_parameters(), Device::cpu);
      mask = magnitude_prune(p, mask, fraction, scope);
      save_mask(mask_path, mask);
    }
    json res;
    if (fs::exists(rd / "result.json")) {
      res = load_json(rd / "result.json");
    } else {
      auto model = s.model(rep.seed);
      model->load_state_dict(rewind);
      Trainer t(*model, rep.train, &s.test_set, recipe(s, s.o.imp_epochs, 256, rep.seed, rd / "checkpoint.safetensors"));
      use_selection(t, sel, rep.train.size());
      t.set_mask(mask);
      const SparsityReport sp = sparsity(t.parameters(), mask);
      std::fprintf(stderr, "sieve study: %s: %.4f of the prunable weights left\n", what.c_str(), sp.kept_fraction);
      const std::vector<EpochStats> h = t.fit();
      write_history(rd.string(), h, what);
      const auto [asr, asr_nontarget] = attack_rates(t, s);
      res = {{"round", r}, {"pruned_acc", h.back().test_acc}, {"pruned_test_loss", h.back().test_loss},
             {"pruned_asr", asr}, {"pruned_asr_nontarget", asr_nontarget}, {"sparsity", sparsity_json(sp)}};
      save_json(rd / "result.json", res);
      std::fprintf(stderr, "sieve study: %s: clean acc %.4f, ASR %.4f (non-target %.4f)\n", what.c_str(),
                   h.back().test_acc, asr, asr_nontarget);
    }
    const std::string path = (rd / "result.json").string();
    per_round.push_back({{"round", json_int(res, "round", path, r, r)}, {"sparsity", json_field(res, "sparsity", path)}});
    rounds.push_back(res);
  }
  save_json(dir / "sparsity.json", {{"scope", seed_protocol ? "per_layer" : "global"},
                                    {"fraction_per_round", fraction}, {"rounds", per_round}});
  return rounds.back();
}

// Writes cell.json, or checks that the folder holds this very cell of this study.
void claim_cell(const fs::path& dir, const json& key, const std::string& method, int64_t replicate, uint64_t seed) {
  const json cell = {{"method", method}, {"replicate_idx", replicate}, {"seed", seed}, {"study", key}};
  const fs::path path = dir / "cell.json";
  if (!fs::exists(path)) {
    fs::create_directories(dir);
    save_json(path, cell);
    return;
  }
  const CellRecord stored = read_cell(load_json(path), path.string());
  const json stored_json = {{"method", stored.method}, {"replicate_idx", stored.replicate_idx}, {"seed", stored.seed}};
  for (const char* k : {"method", "replicate_idx", "seed"})
    SIEVE_CHECK(stored_json[k] == cell[k], path.string(), ": this folder holds a cell with ", k, " = ",
                stored_json[k].dump(), ", not ", cell[k].dump(), "; choose another --out");
  for (const auto& [k, v] : key.items()) {
    const json was = stored.study.value(k, json());
    SIEVE_CHECK(was == v, path.string(), ": this folder holds a study with ", k, " = ", was.dump(), ", not ", v.dump(),
                "; choose another --out");
  }
}

bool cell_done(const fs::path& dir, bool selection_only) {
  return fs::exists(dir / (selection_only ? "selection.json" : "result.json"));
}

void run_cell(const Study& s, const std::string& method, Replicate& rep, const fs::path& dir) {
  const std::string cell = method + "-r" + std::to_string(rep.idx);
  const Selection sel = selection_stage(s, method, rep, dir, cell);
  if (s.o.selection_only) return;
  const json dense = dense_stage(s, sel, rep, dir, cell);
  const json pruned = imp_stage(s, sel, rep, dir, cell);
  const std::string sel_path = (dir / "selection.json").string();
  const SelectionRecord selected = read_selection(load_json(sel_path), sel_path, rep.train.size());
  json row = {{"method", method}, {"replicate_idx", rep.idx}, {"seed", rep.seed}, {"subset_size", selected.subset_size},
              {"poison_kept", selected.poison_kept}, {"poison_total", selected.poison_total},
              {"poison_retention", selected.poison_retention}};
  const std::string dense_path = (dir / "dense" / "result.json").string();
  for (const char* k : {"clean_acc", "asr", "asr_nontarget", "test_loss"}) row[k] = json_number(dense, k, dense_path);
  const std::string pruned_path = (dir / "imp" / ("round-" + std::to_string(s.o.imp_rounds)) / "result.json").string();
  for (const char* k : {"pruned_acc", "pruned_asr", "pruned_asr_nontarget", "pruned_test_loss"})
    row[k] = json_number(pruned, k, pruned_path);
  row["pruned_kept_fraction"] = json_number(json_field(pruned, "sparsity", pruned_path), "kept_fraction", pruned_path);
  save_json(dir / "result.json", row);
}

// The finished cells under folder/cells (a cell counts once its selection is written). Every
// cell must belong to the study `key`; a null key becomes the first cell's.
std::vector<StudyRow> read_cells(const fs::path& folder, json& key) {
  std::vector<StudyRow> rows;
  if (!fs::is_directory(folder / "cells")) return rows;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(folder / "cells"))
    if (e.is_directory() && fs::exists(e.path() / "cell.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const CellRecord cell = read_cell(load_json(dir / "cell.json"), (dir / "cell.json").string());
    if (key.is_null()) key = cell.study;
    for (const auto& [k, v] : key.items()) {
      const json was = cell.study.value(k, json());
      SIEVE_CHECK(was == v, (dir / "cell.json").string(), ": this cell belongs to a study with ", k, " = ", was.dump(),
                  ", not ", v.dump(), "; cells of different studies make no common report");
    }
    if (!fs::exists(dir / "selection.json")) continue;
    const SelectionRecord sel = read_selection(load_json(dir / "selection.json"), (dir / "selection.json").string(), -1);
    StudyRow r;
    r.method = cell.method, r.replicate_idx = cell.replicate_idx, r.seed = cell.seed;
    r.subset_size = sel.subset_size, r.poison_kept = sel.poison_kept, r.poison_total = sel.poison_total;
    r.poison_retention = sel.poison_retention;
    r.selection_note = sel.note;
    if (fs::exists(dir / "result.json")) {
      const std::string path = (dir / "result.json").string();
      const json res = load_json(path);
      for (const auto& metrics : {study_metrics(), extra_metrics()})
        for (const auto& [name, field] : metrics)
          if (name != "poison_retention") r.*field = optional_number(res, name.c_str(), path);
      const std::string metrics_path = (dir / "dense" / "metrics.json").string();
      r.history = history_from_json(json_field(load_json(metrics_path), "history", metrics_path), metrics_path);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

void sort_rows(std::vector<StudyRow>& rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const StudyRow& a, const StudyRow& b) {
    const size_t ra = method_rank(a.method), rb = method_rank(b.method);
    if (ra != rb) return ra < rb;
    if (a.method != b.method) return a.method < b.method;
    return a.replicate_idx < b.replicate_idx;
  });
}

std::vector<std::string> methods_of(const std::vector<StudyRow>& sorted) {
  std::vector<std::string> m;
  for (const StudyRow& r : sorted)
    if (m.empty() || m.back() != r.method) m.push_back(r.method);
  return m;
}

std::vector<double> values_of(const std::vector<StudyRow>& rows, const std::string& method, Field field) {
  std::vector<double> v;
  for (const StudyRow& r : rows)
    if (r.method == method) v.push_back(r.*field);
  return v;
}

// Method -> the published aggregate in its header's order (mean, std per study metric); empty
// when the file is absent.
std::map<std::string, std::vector<double>> load_published(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  if (path.empty() || !fs::exists(path)) return out;
  std::istringstream in(read_file(path, kMaxJsonFileBytes));
  std::string line;
  std::getline(in, line);
  SIEVE_CHECK(line == aggregated_header(false), path, ": unexpected header '", line, "'");
  const size_t columns = 1 + 2 * study_metrics().size();
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> c = split_fields(line);
    SIEVE_CHECK(c.size() == columns, path, ": row '", line, "' does not have ", columns, " columns");
    std::vector<double>& v = out[c[0]];
    for (size_t i = 1; i < c.size(); ++i)
      v.push_back(c[i].empty() ? NAN : parse_double(c[i], cat(path, ": row '", line, "' column ", i + 1)));
  }
  return out;
}

std::string fmt4(double v) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}
std::string fmt_mean_std(MeanStd m) { return std::isnan(m.mean) ? "-" : fmt4(m.mean) + " ± " + fmt4(m.std); }

const uint32_t kMethodColours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b};

void write_plots(const fs::path& dir, const std::vector<StudyRow>& rows, const std::vector<std::string>& methods,
                 const std::map<std::string, std::vector<double>>& published) {
  std::vector<BarPanel> panels;
  for (size_t m = 0; m < study_metrics().size(); ++m) {
    const auto& [name, field] = study_metrics()[m];
    if (name == "pruned_test_loss") continue;
    BarGroup ours{"sieve", {}, {}, 0x1f77b4}, theirs{"published", {}, {}, 0xbbbbbb};
    bool any = false;
    for (const std::string& method : methods) {
      const MeanStd s = mean_std(values_of(rows, method, field));
      ours.values.push_back(s.mean), ours.errors.push_back(s.std);
      any |= !std::isnan(s.mean);
      auto p = published.find(method);
      theirs.values.push_back(p == published.end() ? NAN : p->second[2 * m]);
      theirs.errors.push_back(p == published.end() ? NAN : p->second[2 * m + 1]);
    }
    if (!any) continue;
    BarPanel panel{name, methods, {ours}};
    if (!published.empty()) panel.groups.push_back(theirs);
    panels.push_back(panel);
  }
  if (!panels.empty())
    write_bar_charts((dir / "results.png").string(), "coreset study: mean and std over replicates", panels);

  Panel loss{"train loss (mean over replicates)", "epoch", {}}, acc{"test accuracy (mean over replicates)", "epoch", {}};
  for (size_t m = 0; m < methods.size(); ++m) {
    std::map<int64_t, std::vector<double>> train_loss, test_acc;
    for (const StudyRow& r : rows)
      if (r.method == methods[m])
        for (const EpochStats& e : r.history) {
          train_loss[e.epoch].push_back(e.train_loss);
          test_acc[e.epoch].push_back(e.test_acc);
        }
    if (train_loss.empty()) continue;
    const uint32_t rgb = kMethodColours[std::min(method_rank(methods[m]), std::size(kMethodColours) - 1)];
    Series l{methods[m], {}, {}, rgb}, a{methods[m], {}, {}, rgb};
    for (const auto& [epoch, v] : train_loss) l.x.push_back(double(epoch)), l.y.push_back(mean_std(v).mean);
    for (const auto& [epoch, v] : test_acc) a.x.push_back(double(epoch)), a.y.push_back(mean_std(v).mean);
    loss.series.push_back(l), acc.series.push_back(a);
  }
  if (!loss.series.empty()) write_line_plots((dir / "loss_history.png").string(), "training on each selection", {loss, acc});
}

// The setting and what sieve does differently from the study's code, for results.md.
std::string describe(const json& config) {
  if (!config.contains("key")) return "";
  const json& k = config["key"];
  const bool seed = k.value("protocol", "") == "seed";
  std::ostringstream os;
  os << "Protocol " << k.value("protocol", "?") << ", " << k.value("model", "?") << " on " << k.value("dataset", "?")
     << " (" << k.value("train_size", 0) << " train / " << k.value("test_size", 0) << " test images), "
     << k.value("poisons", 0) << " poisons from all classes relabelled to 0, subsets of " << k.value("subset_size", 0)
     << "; " << k.value("epochs", 0) << " training epochs; IMP: " << k.value("imp_rounds", 0) << " round(s) of "
     << k.value("imp_epochs", 0) << " epoch(s), "
     << (seed ? "30% of each layer's surviving weights per round, the first mask from the rewind point"
              : "20% of all surviving weights (global) per round, the first mask from the dense run")
     << ", rewound to one epoch at constant lr 0.1, batch 256.\n\n"
     << (k.value("poison_draw", "") == "python"
             ? "The poisons are the study's own: CPython's `random.seed(seed); random.sample(range(N), n)`, "
               "reproduced bit for bit (engine/py_random.h)."
             : "The poisons are drawn with sieve's seeded generator (the study used Python's random.sample): the "
               "same distribution, other indices.")
     << (seed ? "" : " CRAIG's weights (cluster sizes) are per-sample loss weights scaled to mean 1 over the selection.")
     << "\n\n";
  return os.str();
}

// Why the published Random row keeps ~99% of the poisons, computed for this study's seeds and
// sizes: the study draws the poisons with `random.seed(seed); random.sample(range(N), n)` and
// the Random subset with `random.seed(seed); random.sample(range(N), k)`, the same seed, so the
// subset's first picks repeat the poison draw. Beside it, an independent uniform draw of the
// same size (sieve's reference protocol) against the same poisons.
std::string random_explanation(const std::vector<StudyRow>& rows, const json& key) {
  const int64_t n = key.value("train_size", int64_t{0}), poisons = key.value("poisons", int64_t{0}),
                k = key.value("subset_size", int64_t{0});
  if (n <= 0 || poisons <= 0 || k <= 0 || k > n || poisons > n) return "";
  std::vector<uint64_t> seeds;
  for (const StudyRow& r : rows)
    if (r.method == "random") seeds.push_back(r.seed);
  if (seeds.empty()) return "";
  std::ostringstream os;
  os << "\n## Why Random keeps the poisons in the published run\n\n"
     << "The study draws its " << poisons << " poisons with `random.seed(seed); random.sample(range(" << n << "), "
     << poisons << ")` and its Random subset with `random.seed(seed); random.sample(range(" << n << "), " << k
     << ")`: the same seed, so both read one Mersenne Twister stream from its start. Python's `sample` chooses its "
        "algorithm by size (the subset: " << (py_sample_uses_pool(n, k) ? "a partial shuffle of a pool" : "rejection of repeats against a set")
     << "; the poisons: " << (py_sample_uses_pool(n, poisons) ? "a partial shuffle of a pool" : "rejection of repeats against a set")
     << "), but both take `_randbelow` draws of the same bit width, so the subset's first picks are the poisons "
        "until a draw that one accepts and the other rejects shifts the two streams apart. An "
        "independent uniform subset keeps about k / N of them. Computed here for this study's seeds and sizes "
        "(sieve's exact CPython draw, engine/py_random.h):\n\n"
     << "| seed | poisons among the subset's first " << poisons << " picks | kept by the study's coupled draw | "
        "kept by an independent draw (reference protocol) |\n|---|---|---|---|\n";
  for (uint64_t seed : seeds) {
    std::vector<int64_t> poison = PyRandom(seed).sample(n, poisons);
    std::sort(poison.begin(), poison.end());
    auto is_poison = [&](int64_t i) { return std::binary_search(poison.begin(), poison.end(), i); };
    const std::vector<int64_t> picks = PyRandom(seed).sample(n, k);
    const auto first = std::count_if(picks.begin(), picks.begin() + poisons, is_poison);
    const auto coupled = std::count_if(picks.begin(), picks.end(), is_poison);
    const Selection independent = select_random(n, k, seed, Protocol::reference);
    const auto apart = std::count_if(independent.indices.begin(), independent.indices.end(), is_poison);
    os << "| " << seed << " | " << first << " | " << coupled << " of " << poisons << " | " << apart << " of "
       << poisons << " |\n";
  }
  os << "\nThe protocol of this run (above) says which of the two its Random row used; `--protocol reference` runs "
        "the independent draw.\n\n";
  return os.str();
}

// One line per cell that records how its selection was drawn or where its ranking was cut.
std::string selection_notes(const std::vector<StudyRow>& rows) {
  std::ostringstream os;
  for (const StudyRow& r : rows)
    if (!r.selection_note.empty()) os << "- " << r.method << "-r" << r.replicate_idx << ": " << r.selection_note << "\n";
  return os.str().empty() ? "" : "## Selections\n\n" + os.str() + "\n";
}

}  // namespace

// The study's names of the chosen methods, in the study's order.
std::vector<std::string> chosen_methods(const std::string& spec) {
  std::vector<std::string> asked = split_fields(spec);
  asked.erase(std::remove(asked.begin(), asked.end(), ""), asked.end());
  SIEVE_CHECK(!asked.empty(), "--methods: empty list");
  for (const std::string& a : asked)
    SIEVE_CHECK(std::any_of(study_methods().begin(), study_methods().end(), [&](const Method& m) { return m.cli == a; }),
                "--methods: unknown method '", a, "' (known: full, random, el2n, forgetting, craig)");
  std::vector<std::string> names;
  for (const Method& m : study_methods())
    if (std::find(asked.begin(), asked.end(), m.cli) != asked.end()) names.push_back(m.name);
  return names;
}

void write_study_reports(const std::string& out, const std::vector<StudyRow>& unsorted, const std::string& reference,
                         const json& config) {
  std::vector<StudyRow> rows = unsorted;
  sort_rows(rows);
  const std::vector<std::string> methods = methods_of(rows);
  const fs::path dir(out);
  fs::create_directories(dir);
  save_json(dir / "config.json", config);

  std::ostringstream all;
  all << kReplicateHeader;
  for (const auto& [name, field] : extra_metrics()) all << ',' << name;
  all << '\n';
  for (const StudyRow& r : rows) {
    all << r.method << ',' << r.replicate_idx << ',' << r.seed << ',' << r.subset_size << ',' << csv_number(r.clean_acc)
        << ',' << csv_number(r.asr) << ',' << r.poison_kept << ',' << r.poison_total << ','
        << csv_number(r.poison_retention) << ',' << csv_number(r.pruned_acc) << ',' << csv_number(r.pruned_asr) << ','
        << csv_number(r.pruned_test_loss);
    for (const auto& [name, field] : extra_metrics()) all << ',' << csv_number(r.*field);
    all << '\n';
  }
  write_file_atomic((dir / "backdoor_all_replicates.csv").string(), all.str());

  std::ostringstream agg;
  agg << aggregated_header(true) << '\n';
  for (const std::string& m : methods) {
    agg << m;
    for (const auto& metrics : {study_metrics(), extra_metrics()})
      for (const auto& [name, field] : metrics) {
        const MeanStd s = mean_std(values_of(rows, m, field));
        agg << ',' << csv_number(s.mean) << ',' << csv_number(s.std);
      }
    agg << ',' << values_of(rows, m, &StudyRow::poison_retention).size() << '\n';
  }
  write_file_atomic((dir / "backdoor_aggregated_results.csv").string(), agg.str());

  std::ostringstream loss;
  loss << kLossHistoryHeader << '\n';
  for (const std::string& m : methods) {
    std::map<int64_t, std::vector<EpochStats>> by_epoch;
    for (const StudyRow& r : rows)
      if (r.method == m)
        for (const EpochStats& e : r.history) by_epoch[e.epoch].push_back(e);
    for (const auto& [epoch, stats] : by_epoch) {
      loss << m << ',' << epoch;
      for (double EpochStats::*f : {&EpochStats::train_loss, &EpochStats::train_acc, &EpochStats::test_loss,
                                    &EpochStats::test_acc}) {
        std::vector<double> v;
        for (const EpochStats& e : stats) v.push_back(e.*f);
        const MeanStd s = mean_std(v);
        loss << ',' << csv_number(s.mean) << ',' << csv_number(s.std);
      }
      loss << '\n';
    }
  }
  write_file_atomic((dir / "backdoor_aggregated_loss_history.csv").string(), loss.str());

  const std::map<std::string, std::vector<double>> published = load_published(reference);
  std::ostringstream md;
  md << "# sieve study: coreset selection and IMP against a backdoor (study 1)\n\n"
     << describe(config)
     << "Mean ± population std (ddof = 0) over replicates. asr: every test image with the test trigger, the fraction "
        "predicted 0 (the study's); non-target: the standard ASR over the other classes' images. pruned: after the "
        "last IMP round; alive: the prunable weights left. Published: "
     << (published.empty() ? "not available" : reference) << ".\n\n"
     << "| source | method | n | poison_retention | clean_acc | asr | pruned_acc | pruned_asr | pruned_test_loss | "
        "asr non-target | pruned asr non-target | alive |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const std::string& m : methods) {
    auto ms = [&](Field f) { return fmt_mean_std(mean_std(values_of(rows, m, f))); };
    md << "| sieve | " << m << " | " << values_of(rows, m, &StudyRow::poison_retention).size() << " | "
       << ms(&StudyRow::poison_retention) << " | " << ms(&StudyRow::clean_acc) << " | " << ms(&StudyRow::asr)
       << " | " << ms(&StudyRow::pruned_acc) << " | " << ms(&StudyRow::pruned_asr) << " | "
       << ms(&StudyRow::pruned_test_loss) << " | " << ms(&StudyRow::asr_nontarget) << " | "
       << ms(&StudyRow::pruned_asr_nontarget) << " | " << ms(&StudyRow::pruned_kept_fraction) << " |\n";
    auto p = published.find(m);
    if (p == published.end()) continue;
    // Published columns: clean_acc, asr, poison_retention, pruned_acc, pruned_asr, pruned_test_loss.
    auto pub = [&](size_t metric) { return fmt_mean_std({p->second[2 * metric], p->second[2 * metric + 1]}); };
    md << "| published | " << m << " |  | " << pub(2) << " | " << pub(0) << " | " << pub(1) << " | " << pub(3) << " | "
       << pub(4) << " | " << pub(5) << " |  |  |  |\n";
  }
  md << random_explanation(rows, config.value("key", json::object())) << selection_notes(rows);
  write_file_atomic((dir / "results.md").string(), md.str());
  write_plots(dir, rows, methods, published);
}


std::vector<uint64_t> study_seeds(std::optional<uint64_t> seed, int64_t replicates) {
  SIEVE_CHECK(replicates >= 1, "--replicates must be >= 1, got ", replicates);
  SIEVE_CHECK(seed || replicates <= 3, "--replicates: the study published 3 seeds; pass --seed to run ", replicates,
              " replicates");
  std::vector<uint64_t> seeds;
  for (int64_t r = 0; r < replicates; ++r) seeds.push_back(seed ? *seed + static_cast<uint64_t>(r) : kPublishedSeeds[r]);
  return seeds;
}

StudyResult merge_study_cells(const std::vector<std::string>& folders) {
  std::vector<StudyRow> rows;
  json key;
  for (const std::string& folder : folders) {
    SIEVE_CHECK(fs::is_directory(fs::path(folder) / "cells"), "--merge: ", folder,
                " holds no study cells (no cells/ folder)");
    for (StudyRow& r : read_cells(folder, key)) rows.push_back(std::move(r));
  }
  sort_rows(rows);
  for (size_t i = 1; i < rows.size(); ++i)
    SIEVE_CHECK(rows[i].method != rows[i - 1].method || rows[i].replicate_idx != rows[i - 1].replicate_idx,
                "--merge: cell ", rows[i].method, "-r", rows[i].replicate_idx, " is in more than one folder");
  return {std::move(rows), {{"command", "study"}, {"merged", folders}, {"key", key}, {"run", run_info("none")}}};
}

StudyResult run_coreset_study(const StudyConfig& o) {
  SIEVE_CHECK(!o.methods.empty(), "--methods: empty list");
  for (const std::string& m : o.methods)
    SIEVE_CHECK(method_rank(m) < study_methods().size(), "study: unknown method '", m,
                "' (the study's names: full, random, el2n, forget, craig)");
  SIEVE_CHECK(!o.seeds.empty(), "study: no replicate seeds");
  const auto replicates = static_cast<int64_t>(o.seeds.size());
  SIEVE_CHECK(o.replicate >= -1 && o.replicate < replicates, "--replicate ", o.replicate, " is not one of 0..",
              replicates - 1);
  const std::vector<std::string> models = model_names();
  SIEVE_CHECK(std::find(models.begin(), models.end(), o.model) != models.end(), "--model: unknown model '", o.model,
              "'");
  const Protocol protocol = parse_protocol(o.protocol);
  for (const auto& [value, flag] : {std::pair{o.epochs, "--epochs"}, {o.score_epochs, "--score-epochs"},
                                    {o.craig_epochs, "--craig-epochs"}, {o.imp_epochs, "--imp-epochs"},
                                    {o.imp_rounds, "--imp-rounds"}})
    SIEVE_CHECK(value >= 1, flag, " must be >= 1, got ", value);
  SIEVE_CHECK(protocol == Protocol::reference || o.score_epochs >= 2 ||
                  std::find(o.methods.begin(), o.methods.end(), "el2n") == o.methods.end(),
              "--score-epochs: the seed protocol's EL2N averages epochs 2..E, so it needs >= 2, got ", o.score_epochs);
  SIEVE_CHECK(o.train_subset >= 0, "--train-subset must be >= 0, got ", o.train_subset);
  SIEVE_CHECK(o.test_subset >= 0, "--test-subset must be >= 0, got ", o.test_subset);
  SIEVE_CHECK(is_generated(o.dataset) || !o.data.empty(), "--data: the ", o.dataset,
              " folder is needed (or --preset quick)");

  // Every replicate trains and tests on the same images: the subsets come from replicate 0's seed.
  const uint64_t data_seed = o.seeds[0];
  const Device device = o.device;
  Study s{o, protocol, {}, {}, {}, {}, 0};
  s.train = random_subset(load_dataset(o.dataset, o.data, true), o.train_subset, data_seed ^ 0x7472u);
  s.test = random_subset(load_dataset(o.dataset, o.data, false), o.test_subset, data_seed ^ 0x7465u);
  s.test.mean = s.train.mean, s.test.std = s.train.std;
  s.k = s.train.size() / 2;
  SIEVE_CHECK(s.k >= 1, "--train-subset: ", s.train.size(), " training images leave an empty half");
  s.test_set = to_device(s.test, device);
  // Study 1's test trigger: rows/cols 26..31 of every test image, the target class included.
  s.asr_set = to_device(triggered_test_set(s.test, red_square_trigger(26, 31), kTarget, true), device);

  // Everything a cell's numbers depend on besides its method and seed; a folder written with
  // other values is never reused, and only cells of one study make a report.
  const json key = {{"model", o.model}, {"dataset", o.dataset}, {"protocol", o.protocol},
                    {"train_size", s.train.size()}, {"test_size", s.test.size()}, {"data_seed", data_seed},
                    {"poison_fraction", kPoisonFraction}, {"target", kTarget},
                    {"poison_draw", poison_draw_name(poison_draw(s.protocol))},
                    {"poisons", static_cast<int64_t>(kPoisonFraction * static_cast<double>(s.train.size()))},
                    {"subset_size", s.k}, {"epochs", o.epochs}, {"score_epochs", o.score_epochs},
                    {"craig_epochs", o.craig_epochs}, {"imp_epochs", o.imp_epochs}, {"imp_rounds", o.imp_rounds}};
  const json config = {{"command", "study"}, {"preset", o.preset}, {"methods", o.methods},
                       {"replicates", replicates}, {"replicate", o.replicate}, {"seeds", o.seeds},
                       {"selection_only", o.selection_only}, {"data", o.data}, {"train_subset", o.train_subset},
                       {"test_subset", o.test_subset}, {"precision", o.precision}, {"key", key},
                       {"run", run_info(device_name(device))}};
  const fs::path out(o.out);
  fs::create_directories(out / "cells");
  std::string methods;
  for (const std::string& m : o.methods) methods += (methods.empty() ? "" : ",") + m;
  std::fprintf(stderr, "sieve study: %s on %s (%ld train / %ld test images), %s protocol, methods %s, %ld replicate(s)\n",
               o.model.c_str(), o.dataset.c_str(), long(s.train.size()), long(s.test.size()), o.protocol.c_str(),
               methods.c_str(), long(replicates));

  for (int64_t r = 0; r < replicates; ++r) {
    if (o.replicate >= 0 && r != o.replicate) continue;
    std::optional<Replicate> rep;  // poisoned and uploaded only when a cell of it has work left
    for (const std::string& m : o.methods) {
      const fs::path dir = out / "cells" / (m + "-r" + std::to_string(r));
      claim_cell(dir, key, m, r, o.seeds[r]);
      if (cell_done(dir, o.selection_only)) continue;
      if (!rep) rep = make_replicate(s, r, o.seeds[r], device);
      run_cell(s, m, *rep, dir);
    }
  }

  json found = key;
  std::vector<StudyRow> rows = read_cells(out, found);
  sort_rows(rows);
  return {std::move(rows), config};
}

}  // namespace sieve
