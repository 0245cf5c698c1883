#include "defense/feature_dump.h"

#include "engine/parse.h"

namespace sieve {

FeatureDump read_feature_dump(const SafetensorsFile& f, const std::string& name) {
  for (const char* k : {"features", "logits", "labels", "is_poison"})
    SIEVE_CHECK(f.tensors.count(k), name, ": not a sieve feature dump (no '", k, "' tensor)");
  for (const char* k : {"num_classes", "poison_fraction"})
    SIEVE_CHECK(f.metadata.count(k), name, ": not a sieve feature dump (no '", k, "' metadata)");
  const Tensor& features = f.tensors.at("features");
  const Tensor& logits = f.tensors.at("logits");
  const Tensor& labels = f.tensors.at("labels");
  const Tensor& is_poison = f.tensors.at("is_poison");
  for (const auto& [k, t] : {std::pair{"features", &features}, std::pair{"logits", &logits}})
    SIEVE_CHECK(is_floating(t->dtype()), name, ": '", k, "' must be a float tensor, found ", dtype_name(t->dtype()));
  for (const auto& [k, t] : {std::pair{"labels", &labels}, std::pair{"is_poison", &is_poison}})
    SIEVE_CHECK(!is_floating(t->dtype()) && t->ndim() == 1, name, ": '", k,
                "' must be a 1-D integer tensor, found ", dtype_name(t->dtype()), " ", shape_str(t->shape()));
  FeatureDump d;
  d.num_classes = parse_int(f.metadata.at("num_classes"), name + ": metadata num_classes", 2, 1'000'000);
  const std::string told = f.metadata.count("assumed_fraction") ? "assumed_fraction" : "poison_fraction";
  d.poison_fraction = parse_double(f.metadata.at(told), name + ": metadata " + told);
  SIEVE_CHECK(d.poison_fraction > 0 && d.poison_fraction < 1, name, ": metadata ", told, " = ",
              f.metadata.at(told), " is outside (0, 1)");
  const int64_t n = labels.numel();
  SIEVE_CHECK(n > 0 && features.ndim() == 2 && features.dim(0) == n && features.dim(1) > 0 && logits.ndim() == 2 &&
                  logits.dim(0) == n && logits.dim(1) == d.num_classes && is_poison.numel() == n,
              name, ": features ", shape_str(features.shape()), ", logits ", shape_str(logits.shape()), ", ", n,
              " labels, ", is_poison.numel(), " poison flags and ", d.num_classes,
              " classes disagree (expected (N, D), (N, classes), N, N)");
  d.features = features.to(DType::f32);
  d.logits = logits.to(DType::f32);
  d.labels = labels.to(DType::i64).to_vector<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    SIEVE_CHECK(d.labels[i] >= 0 && d.labels[i] < d.num_classes, name, ": label ", d.labels[i], " of sample ", i,
                " is outside [0, ", d.num_classes, ")");
  const std::vector<int64_t> flags = is_poison.to(DType::i64).to_vector<int64_t>();
  d.is_poison.reserve(flags.size());
  for (int64_t i = 0; i < n; ++i) {
    SIEVE_CHECK(flags[i] == 0 || flags[i] == 1, name, ": is_poison of sample ", i, " is ", flags[i], ", not 0 or 1");
    d.is_poison.push_back(static_cast<uint8_t>(flags[i]));
  }
  return d;
}

FeatureDump load_feature_dump(const std::string& path) { return read_feature_dump(load_safetensors(path), path); }

}  // namespace sieve
