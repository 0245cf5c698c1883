// Facility location for CRAIG (Mirzasoleiman et al. 2020): pick S maximising
// F(S) = sum_i max_{j in S} sim(i, j) with sim = max(dist) - dist over the pairwise Euclidean
// distances of one class's points, greedily (F is monotone submodular, so greedy reaches at
// least (1 - 1/e) of the optimum). CPU reference (f32, f64; accumulated in f64) and CUDA (f32)
// kernels for the similarity matrix, the marginal gains and the cluster assignment; a class of
// ~6,000 samples is a 6k x 6k matrix.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace sieve {

// points (m, d) -> (m, m) symmetric: max(dist) - dist, dist(i, j) = ||points_i - points_j||_2.
Tensor facility_location_similarity(const Tensor& points);

// similarity (m, m) symmetric, coverage (m,) = max similarity of each point to the selected set
// (0 for the empty set) -> (m,) gains: gain_j = sum_i max(0, sim(j, i) - coverage_i).
Tensor facility_location_gains(const Tensor& similarity, const Tensor& coverage);

// lazy: re-evaluate only the candidate on top of a queue of stale gains (valid upper bounds by
// submodularity); it picks exactly what the plain greedy picks. On CUDA every step evaluates
// all gains in one kernel, so both modes run the plain greedy there.
enum class Greedy { lazy, plain };

// The greedy's choice of `budget` (0..m) rows of points (m, d), in the order chosen: each step
// takes the largest gain, the lower index on ties. With `weights`, weights[k] = the number of
// points whose most similar chosen point is the k-th (the earlier chosen on ties), summing to m when budget >= 1.
std::vector<int64_t> facility_location_greedy(const Tensor& points, int64_t budget,
                                              std::vector<float>* weights = nullptr,
                                              Greedy mode = Greedy::lazy);

}  // namespace sieve
