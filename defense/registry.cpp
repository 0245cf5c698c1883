// Defenses by name, in the order reports list them: the benchmark's baselines, then the
// published detectors, then sieve's own.
#include <functional>
#include <utility>

#include "defense/common.h"
#include "defense/defense.h"

namespace sieve {

namespace {

using Factory = std::unique_ptr<Defense> (*)();

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> r = {
      {"confidence_filter", defense_impl::make_confidence_filter},
      {"spectral_signature", defense_impl::make_spectral_signature},
      {"activation_clustering", defense_impl::make_activation_clustering},
      {"fine_pruning", defense_impl::make_fine_pruning},
      {"spectre", defense_impl::make_spectre},
      {"scan", defense_impl::make_scan},
      {"untangle", defense_impl::make_untangle},
  };
  return r;
}

}  // namespace

std::vector<std::string> defense_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Defense> make_defense(const std::string& name) {
  for (const auto& [n, factory] : registry())
    if (n == name) return factory();
  std::string known;
  for (const std::string& n : defense_names()) known += (known.empty() ? "" : ", ") + n;
  fail("--defenses: unknown defense '", name, "' (known: ", known, ")");
}

}  // namespace sieve
