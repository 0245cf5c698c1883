// Dense linear algebra for analysing features (the defenses' PCA, whitening, clustering): column
// means, covariance, symmetric eigendecomposition, matrix products, projections onto a basis,
// row gathers and k-means. Each runs on the device of its input: the CPU reference accumulates
// in f64 through OpenBLAS / LAPACK, CUDA (f32 inputs) uses cuBLAS, cuSOLVER and sieve's own
// kernels. These are analysis functions, not training ops: nothing here is recorded by autograd.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace sieve {

// x (N, D) -> (D,), the mean of each column.
Tensor column_mean(const Tensor& x);

// x (N, D), mean (D,) -> (D, D) = (x - mean)^T (x - mean) / N (the biased, maximum-likelihood
// covariance).
Tensor covariance(const Tensor& x, const Tensor& mean);

// A symmetric (D, D) matrix as sum_i values[i] * v_i v_i^T: values ascending (D,), vectors
// (D, D) with row i = the unit eigenvector v_i. Eigenvectors are defined up to sign (and up to
// rotation within a repeated eigenvalue).
struct SymmetricEigen {
  Tensor values;
  Tensor vectors;
};
// Only the upper triangle of `a` (row-major) is read. Solved in f64 on either device (LAPACK
// dsyevd, cuSOLVER Dsyevd); the results have a's dtype and device.
SymmetricEigen symmetric_eigen(const Tensor& a);

// op(a) op(b) for 2-d a, b, where op transposes when asked: (m, k) x (k, n) -> (m, n).
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// x (N, D), mean (D,), basis (K, D) -> (N, K) = (x - mean) basis^T: coordinates of the centred
// rows along each basis row (principal components, whitening directions).
Tensor project(const Tensor& x, const Tensor& mean, const Tensor& basis);

// x (N, D) -> (rows.size(), D) with row r = x[rows[r]], on x's device.
Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows);

// Lloyd's k-means on the rows of x (N, D), N >= k >= 1. Initialised by k-means++ (one
// candidate per step) from Generator(seed); then up to `iterations` rounds of (centres = means
// of their members, reassign), stopping early once no assignment changes. A point goes to the
// nearest centre by squared Euclidean distance, the lower cluster index on ties; a cluster
// left empty keeps its previous centre. The assignment step runs on x's device (a CUDA kernel
// on the GPU) and so does the centre update.
struct KMeansResult {
  std::vector<int64_t> assignment;  // (N,) cluster of each row
  Tensor centers;                   // (k, D), x's dtype and device
  double inertia = 0;               // sum of squared distances to the assigned centres
};
KMeansResult kmeans(const Tensor& x, int64_t k, int64_t iterations, uint64_t seed);

}  // namespace sieve
