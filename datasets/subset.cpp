#include <algorithm>
#include <numeric>

#include "datasets/dataset.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace sieve {

ImageDataset subset_of(const ImageDataset& ds, const std::vector<int64_t>& indices) {
  ImageDataset out = ds;
  out.images.clear();
  out.labels.clear();
  out.images.reserve(indices.size() * static_cast<size_t>(ds.image_bytes()));
  for (int64_t i : indices) {
    SIEVE_CHECK(i >= 0 && i < ds.size(), "subset: index ", i, " outside ", ds.name, " of ", ds.size());
    out.labels.push_back(ds.labels[i]);
    out.images.insert(out.images.end(), ds.image(i), ds.image(i) + ds.image_bytes());
  }
  return out;
}

ImageDataset random_subset(const ImageDataset& ds, int64_t keep, uint64_t seed, std::vector<int64_t>* kept) {
  std::vector<int64_t> order(static_cast<size_t>(ds.size()));
  std::iota(order.begin(), order.end(), 0);
  if (keep > 0 && keep < ds.size()) {
    Generator gen(seed);
    for (int64_t i = 0; i < keep; ++i) std::swap(order[i], order[i + gen.below(ds.size() - i)]);
    order.resize(static_cast<size_t>(keep));
    std::sort(order.begin(), order.end());
  }
  if (kept) *kept = order;
  return static_cast<int64_t>(order.size()) == ds.size() ? ds : subset_of(ds, order);
}

}  // namespace sieve
