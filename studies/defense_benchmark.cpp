#include "studies/defense_benchmark.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "attacks/attacks.h"
#include "defense/defense.h"
#include "defense/external_scores.h"
#include "defense/feature_dump.h"
#include "engine/io.h"
#include "engine/safetensors.h"
#include "models/model.h"
#include "studies/plot.h"
#include "studies/run_info.h"
#include "studies/state_files.h"
#include "training/trainer.h"

namespace sieve {

namespace fs = std::filesystem;
using nlohmann::json;

// PROTOCOLS.md, study 2. Unpublished choices (documented there): target 0, BadNets 3x3 white
// square bottom-right, blend = seeded uniform noise with alpha 0.2.
const std::vector<DefenseSetting>& published_defense_settings() {
  static const std::vector<DefenseSetting> s{
      {"resnet20-cifar10-badnets", "resnet20", "cifar10", "badnets", "cifar-10-batches-bin", 0.05},
      {"vgg16bn-cifar100-blend", "vgg16_bn", "cifar100", "blend", "cifar-100-binary", 0.05},
      {"mobilenetv2-fmnist-badnets", "mobilenet_v2", "fashion_mnist", "badnets", "fashion-mnist", 0.08}};
  return s;
}

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// Histograms of the scores of clean samples and of poisons (each normalised to its own count).
void write_score_histogram(const std::string& path, const std::string& title, const std::vector<double>& scores,
                           const std::vector<uint8_t>& is_poison) {
  double lo = INFINITY, hi = -INFINITY;
  for (double s : scores)
    if (std::isfinite(s)) lo = std::min(lo, s), hi = std::max(hi, s);
  if (!std::isfinite(lo)) return;
  if (hi == lo) hi = lo + 1;
  const int bins = 40;
  std::vector<double> clean(bins, 0), poison(bins, 0);
  double nc = 0, np = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) continue;
    const int b = std::min(bins - 1, static_cast<int>((scores[i] - lo) / (hi - lo) * bins));
    (is_poison[i] ? poison : clean)[b] += 1;
    (is_poison[i] ? np : nc) += 1;
  }
  Series c{"clean", {}, {}, 0x1f77b4}, p{"poisons", {}, {}, 0xd62728};
  for (int b = 0; b < bins; ++b) {
    const double x = lo + (b + 0.5) * (hi - lo) / bins;
    c.x.push_back(x), c.y.push_back(nc ? clean[b] / nc : 0);
    p.x.push_back(x), p.y.push_back(np ? poison[b] / np : 0);
  }
  write_line_plots(path, title, {Panel{"fraction of samples per score bin", "suspicion score", {c, p}}});
}

// FNV-1a of the file's bytes, in hex: a resumed run refuses a scores file that changed.
std::string file_digest(const std::string& path) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : read_file(path, kMaxScoresFileBytes)) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// Scores the dump with one defense (fit on the poisoned labels, score every sample).
std::vector<double> score_with(const std::string& name, const FeatureDump& f) {
  auto d = make_defense(name);
  d->fit(f.features, f.labels, f.num_classes, f.poison_fraction);
  std::vector<double> s = d->score(f.features, f.logits);
  SIEVE_CHECK(s.size() == f.labels.size(), "defense ", name, " returned ", s.size(), " scores for ", f.labels.size(),
              " samples");
  return s;
}

std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}
std::string fmt3(double v) { return fixed(v, 3); }

json row_json(const DefenseRow& r) {
  return {{"setting", r.setting},   {"defense", r.defense},   {"clean_acc", r.clean_acc},
          {"asr", r.asr},           {"poison_recall", r.recall}, {"precision", r.precision},
          {"auroc", r.auroc},       {"budget", r.budget},     {"removed_poisons", r.removed_poisons},
          {"poisons", r.poisons},   {"defense_score", r.score_published()},
          {"defense_score_later", r.score_later()}, {"removed_per_class", r.removed_per_class}};
}

// Per class, what the defenses removed from a training set without poisons, and (when retrained)
// what that cost: clean accuracy after the retrain against the victim's (`victim`: NaN offline).
std::string clean_cost_table(const std::vector<const DefenseRow*>& rows, double victim) {
  std::ostringstream md;
  md << "\nNo poisons in this training set: recall, AUROC and the published score are n/a. What each defense "
        "removed, by class, and what it cost:\n\n| defense | removed | per class | clean_acc after | change |\n"
        "|---|---|---|---|---|\n";
  for (const DefenseRow* r : rows) {
    if (r->defense == "none") continue;
    std::string classes;
    for (int64_t c : r->removed_per_class) classes += (classes.empty() ? "" : " ") + std::to_string(c);
    md << "| " << r->defense << " | " << r->budget << " | " << classes << " | " << fixed(r->clean_acc, 3) << " | "
       << (std::isnan(r->clean_acc) || std::isnan(victim) ? std::string("n/a")
                                                          : (r->clean_acc >= victim ? "+" : "") +
                                                                fixed(r->clean_acc - victim, 3))
       << " |\n";
  }
  return md.str();
}

// What a defense removed, by training label.
std::vector<int64_t> per_class(const std::vector<int64_t>& removed, const std::vector<int64_t>& labels,
                               int64_t num_classes) {
  std::vector<int64_t> counts(static_cast<size_t>(num_classes), 0);
  for (int64_t i : removed) ++counts[labels[i]];
  return counts;
}

// Recall and AUROC say nothing where there is nothing to find: a clean training set.
void no_poisons_no_recall(DefenseRow& r) {
  if (r.poisons == 0) r.recall = r.auroc = NAN;
}


// What a dump's folder says of it (setting.json and victim/result.json beside it, when present).
struct DumpInfo {
  std::string attack = "?";  // trigger, fraction, target, source classes
  double victim_acc = NAN, victim_asr = NAN;
};

DumpInfo describe_dump(const std::string& path) {
  DumpInfo d;
  const fs::path dir = fs::path(path).parent_path();
  if (fs::exists(dir / "setting.json")) {
    const fs::path path = dir / "setting.json";
    d.attack = describe_setting(load_json(path), path.string());
  }
  if (fs::exists(dir / "victim" / "result.json")) {
    const fs::path path = dir / "victim" / "result.json";
    const AccuracyAsr v = read_accuracy_asr(load_json(path), path.string());
    d.victim_acc = v.clean_acc, d.victim_asr = v.asr;
  }
  return d;
}

}  // namespace

// The defense name of an external scores file: "external:" and the file's stem.
std::string external_defense_name(const std::string& path) { return "external:" + fs::path(path).stem().string(); }

std::vector<PublishedDefenseRow> load_published_defense_rows(const std::string& path) {
  std::vector<PublishedDefenseRow> rows;
  if (path.empty() || !fs::exists(path)) return rows;
  std::istringstream in(read_file(path, kMaxJsonFileBytes));
  std::string line;
  std::getline(in, line);
  SIEVE_CHECK(line == "method,type,setting,clean_acc,asr,poison_recall,defense_score", path,
              ": unexpected header '", line, "'");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> c;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) c.push_back(x);
    SIEVE_CHECK(c.size() == 7, path, ": row '", line, "' does not have 7 columns");
    const auto value = [&](size_t i) { return parse_double(c[i], cat(path, ": row '", line, "' column ", i + 1)); };
    rows.push_back({c[0], c[1], c[2], value(3), value(4), value(5), value(6)});
  }
  return rows;
}

void write_defense_reports(const std::string& out_dir, const std::vector<DefenseRow>& rows,
                           const std::vector<PublishedDefenseRow>& published, const json& info) {
  const fs::path out(out_dir);
  std::ostringstream csv;
  csv << "setting,defense,clean_acc,asr,poison_recall,defense_score,defense_score_later,precision,auroc,budget,"
         "removed_poisons,poisons\n";
  json all = json::array();
  for (const DefenseRow& r : rows) {
    csv << r.setting << ',' << r.defense << ',' << r.clean_acc << ',' << r.asr << ',' << r.recall << ','
        << r.score_published() << ',' << r.score_later() << ',' << r.precision << ',' << r.auroc << ',' << r.budget
        << ',' << r.removed_poisons << ',' << r.poisons << '\n';
    all.push_back(row_json(r));
  }
  write_file_atomic((out / "results.csv").string(), csv.str());
  save_json(out / "results.json", {{"run", info}, {"rows", all}});

  std::ostringstream md;
  md << "# sieve defend\n\nDefense score = (clean_acc + (1 - asr) + poison_recall) / 3 (the published formula); "
        "later = 0.5 clean_acc + 0.5 (1 - asr).\n";
  std::vector<std::string> settings;
  for (const DefenseRow& r : rows)
    if (std::find(settings.begin(), settings.end(), r.setting) == settings.end()) settings.push_back(r.setting);
  for (const std::string& s : settings) {
    md << "\n## " << s << "\n\n| source | defense | clean_acc | asr | poison_recall | defense_score | later score | "
          "precision | AUROC |\n|---|---|---|---|---|---|---|---|---|\n";
    for (const DefenseRow& r : rows)
      if (r.setting == s)
        md << "| sieve | " << r.defense << " | " << fmt3(r.clean_acc) << " | " << fmt3(r.asr) << " | " << fmt3(r.recall)
           << " | " << fmt3(r.score_published()) << " | " << fmt3(r.score_later()) << " | " << fmt3(r.precision)
           << " | " << fmt3(r.auroc) << " |\n";
    for (const PublishedDefenseRow& p : published)
      if (p.setting == s)
        md << "| published | " << p.method << " | " << fmt3(p.clean_acc) << " | " << fmt3(p.asr)
           << " | " << fmt3(p.recall) << " | " << fmt3(p.score) << " | " << fmt3(0.5 * p.clean_acc + 0.5 * (1 - p.asr))
           << " | | |\n";
    std::vector<const DefenseRow*> clean;
    double victim = NAN;
    for (const DefenseRow& r : rows)
      if (r.setting == s && r.poisons == 0) {
        clean.push_back(&r);
        if (r.defense == "none") victim = r.clean_acc;
      }
    if (!clean.empty()) md << clean_cost_table(clean, victim);
  }
  write_file_atomic((out / "results.md").string(), md.str());
}

void print_defense_rows(const std::vector<DefenseRow>& rows) {
  std::fprintf(stderr, "%-28s %-22s %9s %6s %7s %9s %6s %6s\n", "setting", "defense", "clean_acc", "asr", "recall",
               "score", "prec", "auroc");
  for (const DefenseRow& r : rows)
    std::fprintf(stderr, "%-28s %-22s %9.4f %6.4f %7.4f %9.4f %6.3f %6.3f\n", r.setting.c_str(), r.defense.c_str(),
                 r.clean_acc, r.asr, r.recall, r.score_published(), r.precision, r.auroc);
}

std::vector<DefenseRow> score_feature_dumps(const OfflineScoringConfig& o) {
  std::vector<DefenseRow> rows;
  std::ostringstream csv, md;
  csv << "features,attack,victim_clean_acc,victim_asr,defense,budget,poisons,removed_poisons,recall,precision,auroc\n";
  md << "# sieve defend --offline\n\nDetection quality at the budget round(" << o.removal_factor
     << " * fraction * N) on saved feature dumps; victim accuracy and ASR as recorded beside each dump.\n\n"
     << "| features | attack | victim acc | victim ASR | defense | budget | poisons | recall | precision | AUROC |\n"
     << "|---|---|---|---|---|---|---|---|---|---|\n";
  SIEVE_CHECK(o.scores.empty() || o.scores.size() == o.dumps.size(), "--scores: ", o.scores.size(),
              " scores files for ", o.dumps.size(), " feature dumps (with --offline, one per dump, in order)");
  for (const std::string& path : o.scores) load_scores(path, -1);  // format, dtype and values, before any output
  for (size_t k = 0; k < o.dumps.size(); ++k) {
    const std::string& path = o.dumps[k];
    FeatureDump f = load_feature_dump(path);
    if (o.assumed_fraction >= 0) f.poison_fraction = o.assumed_fraction;
    const DumpInfo info = describe_dump(path);
    const int64_t n = static_cast<int64_t>(f.labels.size());
    const std::vector<double> external = o.scores.empty() ? std::vector<double>{} : load_scores(o.scores[k], n);
    const int64_t budget = removal_budget(o.removal_factor, f.poison_fraction, n);
    std::fprintf(stderr, "%s (%s)\n%-22s %8s %7s %9s %7s %7s\n", path.c_str(), info.attack.c_str(), "defense", "budget",
                 "poisons", "recall", "prec", "auroc");
    std::vector<std::string> names = o.defenses;
    if (!o.scores.empty()) names.push_back(external_defense_name(o.scores[k]));
    for (const std::string& name : names) {
      const bool is_external = name.rfind("external:", 0) == 0;  // no built-in defense is named so
      const std::vector<double> scores = is_external ? external : score_with(name, f);
      const DetectionMetrics m = detection_metrics(scores, f.is_poison, budget);
      DefenseRow r;
      r.setting = path, r.defense = name;
      r.recall = m.recall, r.precision = m.precision, r.auroc = m.auroc, r.budget = m.budget;
      r.removed_poisons = m.removed_poisons, r.poisons = m.poisons;
      r.clean_acc = NAN, r.asr = NAN;
      r.removed_per_class = per_class(top_suspicious(scores, budget), f.labels, f.num_classes);
      no_poisons_no_recall(r);
      rows.push_back(r);
      std::fprintf(stderr, "%-22s %8ld %7ld %9.4f %7.4f %7.4f\n", r.defense.c_str(), long(r.budget), long(r.poisons),
                   r.recall, r.precision, r.auroc);
      csv << path << ",\"" << info.attack << "\"," << info.victim_acc << ',' << info.victim_asr << ',' << r.defense << ','
          << r.budget << ',' << r.poisons << ',' << r.removed_poisons << ',' << r.recall << ',' << r.precision << ','
          << r.auroc << '\n';
      md << "| " << path << " | " << info.attack << " | " << fixed(info.victim_acc, 4) << " | "
         << fixed(info.victim_asr, 4) << " | " << r.defense << " | " << r.budget << " | " << r.poisons << " | "
         << fixed(r.recall, 4) << " | " << fixed(r.precision, 4) << " | " << fixed(r.auroc, 4) << " |\n";
    }
  }
  for (const std::string& path : o.dumps) {
    std::vector<const DefenseRow*> clean;
    for (const DefenseRow& r : rows)
      if (r.setting == path && r.poisons == 0) clean.push_back(&r);
    if (!clean.empty()) md << "\n### " << path << "\n" << clean_cost_table(clean, NAN);
  }
  fs::create_directories(o.out);
  write_file_atomic((fs::path(o.out) / "offline.csv").string(), csv.str());
  write_file_atomic((fs::path(o.out) / "offline.md").string(), md.str());
  return rows;
}

// One setting, stage by stage under out/<setting>/.
std::vector<DefenseRow> run_defense_benchmark(const DefenseBenchmarkConfig& o) {
  const DefenseSetting& st = o.setting;
  const std::string& data = o.data;
  const Device device = o.device;
  SIEVE_CHECK(is_generated(st.dataset) || !data.empty(), "--data (or --data-root): the folder of ", st.dataset,
              " is needed for ", st.name);
  for (const std::string& path : o.scores) {
    SIEVE_CHECK(fs::is_regular_file(path), "--scores: ", path, ": no such file");
    const std::string ext = fs::path(path).extension().string();
    SIEVE_CHECK(ext == ".npy" || ext == ".safetensors", "--scores: ", path, ": a scores file is .npy or .safetensors");
    load_scores(path, -1);  // format, dtype and values, before any data is loaded
  }
  const fs::path dir = fs::path(o.out) / st.name;
  ImageDataset train = random_subset(load_dataset(st.dataset, data, true), o.train_subset, o.seed ^ 0x7472u);
  ImageDataset test = random_subset(load_dataset(st.dataset, data, false), o.test_subset, o.seed ^ 0x7465u);
  test.mean = train.mean, test.std = train.std;
  const Trigger trigger = make_trigger(st.trigger, train.channels, train.height, train.width, o.alpha, o.seed);
  const PoisonedSet poisoned = poison_dataset(train, trigger, {st.fraction, o.target, o.all_classes, o.seed});
  for (const std::string& path : o.scores) load_scores(path, train.size());  // before any training
  fs::create_directories(dir / "victim");  // only once the data, the attack and the scores are good
  // Every test image triggered; the standard ASR counts the non-target ones.
  const ImageDataset asr_set = triggered_test_set(test, trigger, o.target, true);
  auto asr_of = [&](Trainer& t, const DeviceDataset& d) {
    return attack_success_rate(t.predict(d), test.labels, o.target, false);
  };
  const int64_t retrain_epochs = o.retrain_epochs > 0 ? o.retrain_epochs : o.epochs;
  // The fraction the defenses are told and the budget comes from: the true one unless given.
  const double told = o.assumed_fraction >= 0 ? o.assumed_fraction : st.fraction;
  // Everything the stages depend on; a folder written with other values is never reused.
  json key = {{"setting", st.name}, {"model", st.model}, {"dataset", st.dataset}, {"data", data},
                    {"trigger", trigger.name}, {"alpha", o.alpha}, {"poison_fraction", st.fraction},
                    {"target", o.target}, {"poisons_from_all_classes", o.all_classes},
                    {"poisons", poisoned.poison_indices.size()}, {"train_size", train.size()},
                    {"test_size", test.size()}, {"epochs", o.epochs}, {"retrain_epochs", retrain_epochs},
                    {"batch_size", o.batch_size}, {"lr", o.lr}, {"removal_factor", o.removal_factor},
                    {"seed", o.seed}, {"augment", o.augment}};
  if (o.assumed_fraction >= 0) key["assumed_fraction"] = told;
  key["precision"] = o.precision;
  if (fs::exists(dir / "setting.json")) {
    json stored = load_json(dir / "setting.json");
    // Folders from before the precision was recorded were trained in fp32.
    if (stored.is_object() && !stored.contains("precision")) stored["precision"] = "fp32";
    check_setting(stored, key, (dir / "setting.json").string());
  } else {
    json with_run = key;
    with_run["run"] = run_info(device_name(device));
    with_run["asr_test_size"] = asr_set.size() - std::count(test.labels.begin(), test.labels.end(), o.target);
    save_json(dir / "setting.json", with_run);
  }
  std::fprintf(stderr, "sieve defend: %s: %s on %s, %s trigger, %zu poisons of %ld images (target %ld)\n",
               st.name.c_str(), st.model.c_str(), st.dataset.c_str(), trigger.name.c_str(),
               poisoned.poison_indices.size(), long(train.size()), long(o.target));

  const DeviceDataset dtrain = to_device(poisoned.data, device), dtest = to_device(test, device);
  DeviceDataset dasr = to_device(asr_set, device);
  dasr.mean = train.mean, dasr.std = train.std;
  ModelConfig mc;
  mc.num_classes = train.num_classes, mc.in_channels = train.channels, mc.seed = o.seed;
  TrainConfig tc;
  tc.epochs = o.epochs, tc.batch_size = o.batch_size, tc.lr = o.lr, tc.seed = o.seed, tc.augment = o.augment;
  tc.cuda_graph = o.cuda_graph;

  // Stage 1: the victim, its clean accuracy and ASR, and the feature dump.
  const fs::path features_path = dir / "features.safetensors";
  json victim;
  if (fs::exists(dir / "victim" / "result.json") && fs::exists(features_path)) {
    victim = load_json(dir / "victim" / "result.json");
  } else {
    auto model = make_model(st.model, mc);
    tc.checkpoint = (dir / "victim" / "checkpoint.safetensors").string();
    Trainer t(*model, dtrain, &dtest, tc);
    const std::vector<EpochStats> h = t.fit();
    write_history((dir / "victim").string(), h, "victim: " + st.name);
    const Trainer::Extraction e = t.extract(dtrain);
    save_safetensors(features_path.string(),
                     {{"features", e.features}, {"logits", e.logits},
                      {"labels", Tensor::from_vector(poisoned.data.labels, {train.size()})},
                      {"original_labels", Tensor::from_vector(poisoned.original_labels, {train.size()})},
                      {"is_poison", Tensor::from_vector(poisoned.is_poison, {train.size()})}},
                     {{"setting", st.name}, {"num_classes", std::to_string(train.num_classes)},
                      {"poison_fraction", std::to_string(st.fraction)}, {"assumed_fraction", std::to_string(told)},
                      {"commit", git_commit()}});
    victim = {{"clean_acc", h.back().test_acc}, {"asr", asr_of(t, dasr)}};
    save_json(dir / "victim" / "result.json", victim);
  }
  const AccuracyAsr v = read_accuracy_asr(victim, (dir / "victim" / "result.json").string());
  std::fprintf(stderr, "sieve defend: %s: victim clean acc %.4f, ASR %.4f\n", st.name.c_str(), v.clean_acc, v.asr);

  std::vector<DefenseRow> rows;
  DefenseRow none;
  none.setting = st.name, none.defense = "none";
  none.clean_acc = v.clean_acc, none.asr = v.asr;
  none.poisons = static_cast<int64_t>(poisoned.poison_indices.size());
  none.precision = none.auroc = NAN;  // nothing is scored or removed
  no_poisons_no_recall(none);
  rows.push_back(none);

  const FeatureDump f = load_feature_dump(features_path.string());
  const int64_t budget = removal_budget(o.removal_factor, told, train.size());
  // The built-in defenses, then the external scores files (each a defense of its own).
  std::vector<std::pair<std::string, std::string>> defenses;  // name, scores file ("" = built in)
  for (const std::string& name : o.defenses) defenses.emplace_back(name, "");
  for (const std::string& path : o.scores) defenses.emplace_back(external_defense_name(path), path);
  // Defenses that remove exactly the same samples share one retrain: training is deterministic in
  // its data and seed, so the second would repeat the first bit for bit.
  std::map<std::vector<int64_t>, fs::path> retrain_of_removal;
  for (const auto& [name, scores_file] : defenses) {
    const fs::path ddir = dir / "defenses" / name;
    fs::create_directories(ddir);
    // Stage 2: scores and detection quality.
    json det;
    if (fs::exists(ddir / "detection.json")) {
      det = load_json(ddir / "detection.json");
      if (!scores_file.empty()) {
        const json was = det.value("scores_digest", json());
        SIEVE_CHECK(was == file_digest(scores_file), scores_file, ": differs from the scores evaluated in ",
                    ddir.string(), " (", det.value("scores_file", json()).dump(),
                    "); give it another file name or choose another --out");
      }
    } else {
      const std::vector<double> scores = scores_file.empty() ? score_with(name, f) : load_scores(scores_file, train.size());
      const DetectionMetrics m = detection_metrics(scores, f.is_poison, budget);
      save_safetensors((ddir / "scores.safetensors").string(),
                       {{"scores", Tensor::from_vector(scores, {train.size()})}}, {{"defense", name}});
      write_score_histogram((ddir / "scores.png").string(), name + " on " + st.name, scores, f.is_poison);
      det = {{"budget", m.budget}, {"removed_poisons", m.removed_poisons}, {"poisons", m.poisons},
             {"recall", m.recall}, {"precision", m.precision}, {"auroc", m.auroc},
             {"removed", top_suspicious(scores, budget)}};
      if (!scores_file.empty()) det["scores_file"] = scores_file, det["scores_digest"] = file_digest(scores_file);
      save_json(ddir / "detection.json", det);
    }
    const DetectionRecord d = read_detection(det, (ddir / "detection.json").string(), train.size());
    std::vector<int64_t> removal = d.removed;
    std::sort(removal.begin(), removal.end());
    const auto same = retrain_of_removal.find(removal);
    // Stage 3: retrain from scratch on what the defense kept.
    json res;
    if (fs::exists(ddir / "result.json")) {
      res = load_json(ddir / "result.json");
    } else if (same != retrain_of_removal.end()) {
      const std::string other = same->second.filename().string();
      std::fprintf(stderr, "sieve defend: %s: %s removed the same %ld samples as %s: its retrain is reused\n",
                   st.name.c_str(), name.c_str(), long(d.budget), other.c_str());
      for (const char* file : {"metrics.csv", "metrics.json", "curves.png"})
        fs::copy_file(same->second / file, ddir / file, fs::copy_options::overwrite_existing);
      res = load_json(same->second / "result.json");
      res["retrain_of"] = other;
      save_json(ddir / "result.json", res);
    } else {
      std::vector<uint8_t> removed(static_cast<size_t>(train.size()), 0);
      for (int64_t i : d.removed) removed[i] = 1;
      std::vector<int64_t> keep;
      for (int64_t i = 0; i < train.size(); ++i)
        if (!removed[i]) keep.push_back(i);
      auto model = make_model(st.model, mc);
      TrainConfig rc = tc;
      rc.epochs = retrain_epochs;
      rc.test_each_epoch = false;  // a retrain's result is its final model's; one test pass, not one per epoch
      rc.checkpoint = (ddir / "checkpoint.safetensors").string();
      Trainer t(*model, dtrain, &dtest, rc);
      t.set_subset(keep);
      std::fprintf(stderr, "sieve defend: %s: retraining after %s (removed %ld, %ld of %ld poisons)\n", st.name.c_str(),
                   name.c_str(), long(d.budget), long(d.removed_poisons), long(d.poisons));
      const std::vector<EpochStats> h = t.fit();
      write_history(ddir.string(), h, name + " retrain: " + st.name);
      res = {{"clean_acc", h.back().test_acc}, {"asr", asr_of(t, dasr)}};
      save_json(ddir / "result.json", res);
    }
    const AccuracyAsr retrained = read_accuracy_asr(res, (ddir / "result.json").string());
    retrain_of_removal.emplace(std::move(removal), ddir);
    DefenseRow r;
    r.setting = st.name, r.defense = name;
    r.clean_acc = retrained.clean_acc, r.asr = retrained.asr;
    r.recall = d.recall, r.precision = d.precision, r.auroc = d.auroc;
    r.budget = d.budget, r.removed_poisons = d.removed_poisons, r.poisons = d.poisons;
    r.removed_per_class = per_class(d.removed, f.labels, f.num_classes);
    no_poisons_no_recall(r);
    rows.push_back(r);
    print_defense_rows({r});
  }
  return rows;
}

std::vector<std::string> chosen_defenses(const std::string& spec) {
  if (spec == "all") return defense_names();
  if (spec == "none") return {};  // the victim and its feature dump only
  std::vector<std::string> names = split_list(spec);
  SIEVE_CHECK(!names.empty(), "--defenses: empty list");
  for (const std::string& n : names) make_defense(n);  // rejects unknown names with the known list
  return names;
}

}  // namespace sieve
