#include "studies/state_files.h"

#include <algorithm>
#include <sstream>

#include "engine/error.h"

namespace sieve {

namespace {

// Distinct indices in [0, n): a repeated one would count a sample twice.
void check_distinct(std::vector<int64_t> indices, const char* field, const std::string& name) {
  std::sort(indices.begin(), indices.end());
  const auto repeated = std::adjacent_find(indices.begin(), indices.end());
  SIEVE_CHECK(repeated == indices.end(), name, ": field \"", field, "\" holds index ", *repeated, " twice");
}

int64_t index_limit(int64_t n) { return n < 0 ? INT64_MAX : n - 1; }

}  // namespace

AccuracyAsr read_accuracy_asr(const json& j, const std::string& name) {
  return {json_number(j, "clean_acc", name), json_number(j, "asr", name)};
}

DetectionRecord read_detection(const json& j, const std::string& name, int64_t n) {
  DetectionRecord d;
  d.budget = json_int(j, "budget", name, 0, std::max<int64_t>(n, 0));
  d.poisons = json_int(j, "poisons", name, 0, std::max<int64_t>(n, 0));
  d.removed_poisons = json_int(j, "removed_poisons", name, 0, d.poisons);
  d.recall = json_number(j, "recall", name);
  d.precision = json_number(j, "precision", name);
  d.auroc = json_number(j, "auroc", name);
  d.removed = json_int_list(j, "removed", name, 0, index_limit(n));
  SIEVE_CHECK(static_cast<int64_t>(d.removed.size()) == d.budget, name, ": \"removed\" lists ", d.removed.size(),
              " samples but the budget is ", d.budget);
  check_distinct(d.removed, "removed", name);
  return d;
}

void check_setting(const json& stored, const json& key, const std::string& name) {
  SIEVE_CHECK(stored.is_object(), name, ": expected a JSON object, found ", stored.type_name());
  for (const auto& [k, v] : key.items()) {
    const auto it = stored.find(k);
    SIEVE_CHECK(it != stored.end() && *it == v, name, ": this folder holds a run with ", k, " = ",
                it != stored.end() ? it->dump(-1, ' ', true, json::error_handler_t::replace) : "(none)", ", not ",
                v.dump(), "; choose another --out");
  }
}

std::string describe_setting(const json& st, const std::string& name) {
  std::ostringstream a;
  a << json_string(st, "trigger", name) << ", " << json_int(st, "poisons", name, 0) << " poisons ("
    << 100 * json_number(st, "poison_fraction", name) << "%) of " << json_int(st, "train_size", name, 0) << ", target "
    << json_int(st, "target", name, 0) << (json_bool(st, "poisons_from_all_classes", name) ? ", from all classes" : "");
  if (st.contains("assumed_fraction")) a << ", defenses told " << 100 * json_number(st, "assumed_fraction", name) << "%";
  return a.str();
}

CellRecord read_cell(const json& j, const std::string& name) {
  CellRecord c;
  c.method = json_string(j, "method", name);
  c.replicate_idx = json_int(j, "replicate_idx", name, 0);
  const json& seed = json_field(j, "seed", name);
  SIEVE_CHECK(seed.is_number_unsigned(), name, ": field \"seed\" must be a non-negative integer, found ",
              seed.dump(-1, ' ', true, json::error_handler_t::replace));
  c.seed = seed.get<uint64_t>();
  c.study = json_field(j, "study", name);
  SIEVE_CHECK(c.study.is_object(), name, ": field \"study\" must be an object, found ", c.study.type_name());
  return c;
}

SelectionRecord read_selection(const json& j, const std::string& name, int64_t n) {
  SelectionRecord s;
  s.indices = json_int_list(j, "indices", name, 0, index_limit(n));
  check_distinct(s.indices, "indices", name);
  for (double w : json_number_list(j, "weights", name)) {
    SIEVE_CHECK(std::isfinite(w) && w >= 0, name, ": field \"weights\" holds ", w, ", not a finite weight >= 0");
    s.weights.push_back(static_cast<float>(w));
  }
  SIEVE_CHECK(s.weights.empty() || s.weights.size() == s.indices.size(), name, ": ", s.weights.size(),
              " weights for ", s.indices.size(), " indices (one each, or none for equal weights)");
  s.subset_size = json_int(j, "subset_size", name, 0);
  SIEVE_CHECK(s.subset_size == static_cast<int64_t>(s.indices.size()), name, ": subset_size ", s.subset_size,
              " but ", s.indices.size(), " indices");
  s.poison_total = json_int(j, "poison_total", name, 0);
  s.poison_kept = json_int(j, "poison_kept", name, 0, s.poison_total);
  s.poison_retention = json_number(j, "poison_retention", name);
  if (j.contains("draw")) s.note = json_string(j, "draw", name);
  if (j.contains("cut")) {
    const json& c = json_field(j, "cut", name);
    const std::string what = name + " (cut)";
    std::ostringstream note;
    note << json_int(c, "zero_scores", what, 0) << " samples score exactly 0; cut at score "
         << json_number(c, "cut_score", what) << ", " << json_int(c, "tied_at_cut", what, 0)
         << " samples tied there, " << json_int(c, "tied_kept", what, 0)
         << " of them kept (ties broken by the lower index)";
    s.note = note.str();
  }
  return s;
}

double optional_number(const json& j, const char* key, const std::string& name) {
  SIEVE_CHECK(j.is_object(), name, ": expected a JSON object, found ", j.type_name());
  return j.contains(key) ? json_number(j, key, name) : NAN;
}

}  // namespace sieve
