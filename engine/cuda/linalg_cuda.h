// CUDA side of engine/linalg (f32 data, f64 eigensolver): broadcasts, row gathers, the k-means
// assignment and centre-update kernels and cuSOLVER's symmetric eigensolver. Defined in linalg.cu.
#pragma once
#include <cstdint>

namespace sieve::cuda {

// x, y (n, d), row (d,): y[i, j] = x[i, j] - row[j].
void subtract_row(const float* x, const float* row, float* y, int64_t n, int64_t d);

// x (?, d), rows (count,) valid row indices of x -> y (count, d) with y[r] = x[rows[r]].
void gather_rows(const float* x, const int64_t* rows, float* y, int64_t count, int64_t d);

// x (n, d), centers (k, d): assignment[i] = the nearest centre by squared Euclidean distance
// (lower index on ties), distance[i] = that squared distance.
void kmeans_assign(const float* x, const float* centers, int64_t* assignment, float* distance,
                   int64_t n, int64_t d, int64_t k);

// centers (k, d) in/out: each centre with at least one member becomes the mean of its members
// (summed in f64, in row order, so repeated runs agree bit for bit); the others are kept.
void kmeans_update(const float* x, const int64_t* assignment, float* centers, int64_t n, int64_t d,
                   int64_t k);

// cuSOLVER Dsyevd on the column-major (n, n) matrix a (lower triangle read): eigenvalues
// ascending into w (n,), eigenvectors into the columns of a. work holds the doubles
// symmetric_eigen_workspace asks for; *info (on the device) is 0 on success.
int64_t symmetric_eigen_workspace(const double* a, const double* w, int64_t n);
void symmetric_eigen(double* a, double* w, int64_t n, double* work, int64_t lwork, int* info);

}  // namespace sieve::cuda
