// CUDA kernels of selection/facility_location (f32). Defined in facility_location.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// points (m, d) -> sim (m, m) = max(dist) - dist; max_dist: one device float of scratch, which
// receives max(dist) (NaN when a point is not finite).
void facility_location_similarity(const float* points, int64_t m, int64_t d, float* sim, float* max_dist);
// gains[j] = sum_i max(0, sim[j * m + i] - coverage[i]) (sim symmetric: row j = column j).
void facility_location_gains(const float* sim, const float* coverage, int64_t m, float* gains);
// coverage[i] = max(coverage[i], sim[j * m + i]) after choosing j.
void facility_location_cover(const float* sim, int64_t m, int64_t j, float* coverage);
// assignment[i] = the first k in [0, count) maximising sim[chosen[k] * m + i].
void facility_location_assign(const float* sim, int64_t m, const int64_t* chosen, int64_t count,
                              int64_t* assignment);

}  // namespace sieve::cuda
