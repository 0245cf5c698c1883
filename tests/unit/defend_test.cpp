// The defense benchmark harness: offline scoring of a feature dump with a planted poison
// cluster, and the whole pipeline at toy scale (poison, victim, features, scores, retrain,
// reports), which a second run resumes without redoing any stage.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <tuple>

#include "apps/defend_command.h"
#include "datasets/dataset.h"
#include "defense/defense.h"
#include "engine/io.h"
#include "engine/parse.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "tests/common/check.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

// 4 Gaussian classes in 8 dims; 30 poisons labelled 0 sit in a tight cluster far from class 0.
void write_dump(const std::string& path) {
  const int64_t n = 600, d = 8, c = 4, poisons = 30;
  std::vector<float> feats(static_cast<size_t>(n * d)), logits(static_cast<size_t>(n * c), 0.0f);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  std::vector<uint8_t> is_poison(static_cast<size_t>(n), 0);
  Generator g(3);
  for (int64_t i = 0; i < n; ++i) {
    const bool p = i % 20 == 0 && i / 20 < poisons;
    const int64_t y = p ? 0 : i % c;
    labels[i] = y, is_poison[i] = p;
    for (int64_t k = 0; k < d; ++k)
      feats[i * d + k] = static_cast<float>((k == y ? 4.0 : 0.0) + (p && k == 5 ? 6.0 : 0.0) + g.normal());
    logits[i * c + y] = p ? 9.0f : 3.0f;
  }
  save_safetensors(path, {{"features", Tensor::from_vector(feats, {n, d})}, {"logits", Tensor::from_vector(logits, {n, c})},
                          {"labels", Tensor::from_vector(labels, {n})}, {"is_poison", Tensor::from_vector(is_poison, {n})}},
                   {{"num_classes", std::to_string(c)}, {"poison_fraction", "0.05"}});
}

}  // namespace

TEST_CASE("defend: offline mode scores a feature dump with every defense") {
  test::TempDir dir;
  write_dump(dir / "dump.safetensors");
  DefendOptions o;
  o.offline = {dir / "dump.safetensors"};
  o.out = dir / "out";
  const std::vector<DefenseRow> rows = run_defend(o);
  REQUIRE(rows.size() == defense_names().size());
  for (const DefenseRow& r : rows) {
    CHECK(r.budget == 30);  // round(1.0 * 0.05 * 600)
    CHECK(r.poisons == 30);
    CHECK(r.auroc >= 0.0);
    CHECK(r.auroc <= 1.0);
    if (r.defense == "spectral_signature") CHECK(r.recall >= 0.9);
  }
  CHECK(fs::exists(dir / "out/offline.csv"));
  CHECK(fs::exists(dir / "out/offline.md"));
  write_file_atomic(dir / "bad.safetensors", "not a file");
  o.offline = {dir / "bad.safetensors"};
  CHECK_THROWS_AS(run_defend(o), Error);
  save_safetensors(dir / "nometa.safetensors", {{"features", Tensor::zeros({2, 2})}});
  o.offline = {dir / "nometa.safetensors"};
  CHECK_THROWS_WITH_AS(run_defend(o), doctest::Contains("not a sieve feature dump"), Error);
}

TEST_CASE("defend: the whole pipeline at toy scale, resumed without redoing a stage") {
  test::TempDir dir;
  DefendOptions o;
  o.preset = "quick";
  o.epochs = 1;
  o.batch_size = 32;
  o.train_subset = 200;
  o.test_subset = 100;
  o.defenses = "spectral_signature,confidence_filter";
  o.device = "cpu";
  o.out = dir / "bench";
  CLI::App app;
  DefendOptions parsed_into;
  CLI::App* cmd = add_defend_command(app, parsed_into);
  app.parse(std::vector<std::string>{"1", "--epochs", "32", "--batch-size", "defend"});  // marks both as given
  const std::vector<DefenseRow> rows = run_defend(o, cmd);
  REQUIRE(rows.size() == 3);  // none + 2 defenses
  CHECK(rows[0].defense == "none");
  CHECK(rows[0].poisons == 10);  // floor(0.05 * 200)
  const fs::path s = fs::path(o.out) / "quick-resnet20-shapes-red_square";
  for (const char* f : {"setting.json", "features.safetensors", "victim/result.json", "victim/curves.png",
                        "defenses/spectral_signature/detection.json", "defenses/spectral_signature/scores.png",
                        "defenses/spectral_signature/result.json", "defenses/confidence_filter/result.json"})
    CHECK_MESSAGE(fs::exists(s / f), f);
  for (const char* f : {"results.csv", "results.json", "results.md"}) CHECK_MESSAGE(fs::exists(fs::path(o.out) / f), f);
  const SafetensorsFile dump = load_safetensors((s / "features.safetensors").string());
  CHECK(dump.tensors.at("features").shape() == Shape{200, 64});
  CHECK(dump.tensors.at("logits").shape() == Shape{200, 10});

  const auto stamp = fs::last_write_time(s / "defenses/spectral_signature/result.json");
  const std::vector<DefenseRow> again = run_defend(o, cmd);
  CHECK(fs::last_write_time(s / "defenses/spectral_signature/result.json") == stamp);
  REQUIRE(again.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(again[i].clean_acc == rows[i].clean_acc);
    CHECK(again[i].asr == rows[i].asr);
    CHECK(again[i].recall == rows[i].recall);
  }
  // A defense that removes exactly what an earlier one removed gets its retrain, not a new one:
  // here external scores equal to spectral_signature's.
  o.scores = {(s / "defenses/spectral_signature/scores.safetensors").string()};
  const std::vector<DefenseRow> with_copy = run_defend(o, cmd);
  REQUIRE(with_copy.size() == 4);
  CHECK(with_copy[3].defense == "external:scores");
  CHECK(load_json((s / "defenses/external:scores/result.json").string()).at("retrain_of") == "spectral_signature");
  CHECK(with_copy[3].clean_acc == with_copy[1].clean_acc);
  CHECK(with_copy[3].asr == with_copy[1].asr);
  CHECK(fs::exists(s / "defenses/external:scores/metrics.csv"));
  CHECK(fs::last_write_time(s / "defenses/spectral_signature/result.json") == stamp);
  o.scores.clear();
  DefendOptions changed = o;
  changed.seed = 5;  // another run's folder is never reused
  CHECK_THROWS_WITH_AS(run_defend(changed, cmd), doctest::Contains("this folder holds a run with"), Error);
  o.defenses = "spectral_signature,magic";
  CHECK_THROWS_WITH_AS(run_defend(o, cmd), doctest::Contains("unknown defense 'magic'"), Error);
}

TEST_CASE("defend: the CIFAR-100 blend setting runs end to end on generated CIFAR-100 files") {
  // CIFAR-100 itself is not available here: the setting runs on official-format files written
  // from the synthetic dataset (fine label = synthetic class * 10 + 3, coarse = class).
  test::TempDir dir;
  for (const auto& [name, n, seed] : {std::tuple<const char*, int64_t, uint64_t>{"train.bin", 160, 1}, {"test.bin", 40, 2}}) {
    const ImageDataset src = make_synthetic(n, 10, seed);
    std::string bytes;
    for (int64_t i = 0; i < n; ++i) {
      bytes += static_cast<char>(src.labels[i]);
      bytes += static_cast<char>(src.labels[i] * 10 + 3);
      bytes.append(reinterpret_cast<const char*>(src.image(i)), 3072);
    }
    write_file_atomic(dir / name, bytes);
  }
  DefendOptions o;
  o.setting = "vgg16bn-cifar100-blend";
  o.data = dir.path.string();
  o.epochs = 1;
  o.retrain_epochs = 1;
  o.batch_size = 40;
  o.defenses = "spectral_signature";
  o.device = "cpu";
  o.out = dir / "bench";
  const std::vector<DefenseRow> rows = run_defend(o);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].setting == "vgg16bn-cifar100-blend");
  CHECK(rows[1].poisons == 8);  // floor(0.05 * 160), all from non-target classes
  CHECK(rows[1].budget == 8);
  const SafetensorsFile dump = load_safetensors(dir / "bench/vgg16bn-cifar100-blend/features.safetensors");
  CHECK(dump.tensors.at("features").shape() == Shape{160, 512});
  CHECK(dump.tensors.at("logits").shape() == Shape{160, 100});
}

TEST_CASE("defend: on a clean training set recall is n/a and the report shows what removal cost, per class") {
  // Through the library itself (studies/defense_benchmark.h), as an out-of-tree program calls it.
  test::TempDir dir;
  DefenseBenchmarkConfig c;
  c.setting = {"clean-resnet20-synthetic", "resnet20", "synthetic", "red_square", "", 0.0};
  c.assumed_fraction = 0.05;  // the defenses are told 5%: they remove round(0.05 * 200) = 10
  c.defenses = {"spectral_signature"};
  c.epochs = 1, c.batch_size = 32, c.lr = 0.05, c.train_subset = 200, c.test_subset = 100;
  c.out = dir / "bench";
  const std::vector<DefenseRow> rows = run_defense_benchmark(c);
  REQUIRE(rows.size() == 2);
  for (const DefenseRow& r : rows) {
    CHECK(r.poisons == 0);
    CHECK(std::isnan(r.recall));
    CHECK(std::isnan(r.score_published()));
    CHECK(std::isfinite(r.score_later()));
  }
  const DefenseRow& s = rows[1];
  CHECK(s.budget == 10);
  CHECK(std::isnan(s.auroc));
  CHECK(s.precision == 0.0);
  REQUIRE(s.removed_per_class.size() == 10);
  CHECK(std::accumulate(s.removed_per_class.begin(), s.removed_per_class.end(), int64_t{0}) == 10);

  write_defense_reports(c.out, rows, {}, nlohmann::json::object());
  const std::string md = read_file((fs::path(c.out) / "results.md").string());
  const size_t at = md.find("| sieve | spectral_signature | ");
  REQUIRE(at != std::string::npos);
  const std::string line = md.substr(at, md.find('\n', at) - at);
  // clean_acc | asr | poison_recall | defense_score | later | precision | AUROC
  CHECK_MESSAGE(line.find(" | n/a | n/a | ") != std::string::npos, line);
  const bool auroc_na = line.size() > 6 && line.substr(line.size() - 6) == " n/a |";
  CHECK_MESSAGE(auroc_na, line);
  CHECK(md.find("No poisons in this training set") != std::string::npos);
  std::string per_class;
  for (int64_t k : s.removed_per_class) per_class += (per_class.empty() ? "" : " ") + std::to_string(k);
  CHECK_MESSAGE(md.find("| spectral_signature | 10 | " + per_class + " | ") != std::string::npos, md);
  const nlohmann::json j = load_json(fs::path(c.out) / "results.json");
  CHECK(j["rows"][1]["poison_recall"].is_null());
  CHECK(j["rows"][1]["removed_per_class"].get<std::vector<int64_t>>() == s.removed_per_class);

  // Offline, the same dump: n/a recall, the per-class removal, no accuracy.
  const std::vector<DefenseRow> off = score_feature_dumps(
      {{(fs::path(c.out) / c.setting.name / "features.safetensors").string()}, {}, {"spectral_signature"}, 1.0, -1,
       dir / "offline"});
  REQUIRE(off.size() == 1);
  CHECK(std::isnan(off[0].recall));
  CHECK(off[0].removed_per_class == s.removed_per_class);
  const std::string offline = read_file((fs::path(dir / "offline") / "offline.md").string());
  CHECK(offline.find("| spectral_signature | 10 | " + per_class + " | n/a | n/a |") != std::string::npos);
}
