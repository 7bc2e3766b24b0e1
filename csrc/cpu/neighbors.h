// Exact Euclidean 1-nearest neighbours on the CPU, with seeded tie-breaking.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace unlearn::cpu {

// For every row i of `points` (n x d, row-major), writes to out[i] the index of
// the nearest row j != i. Distances are sum_c (p_ic - p_jc)^2 accumulated in
// column order; exact ties go to the smaller tie_key(seed, i, j). Uses a k-d
// tree in low dimensions and a dense scan of all pairs, vectorised across
// candidates, otherwise (cpu/neighbors_dense.h); extra memory is O(n d).
template <typename scalar_t>
void nearest_neighbors(const scalar_t* points, int64_t n, int64_t d, int64_t seed, int64_t* out);

// The same for a float32/float64 CPU tensor (n x d, any layout): the index
// (int64) of every row's nearest other row.
at::Tensor nearest_neighbors(const at::Tensor& points, int64_t seed);

}  // namespace unlearn::cpu
