// Exact Euclidean 1-nearest neighbours on the GPU, shared by the CUDA ops.
#pragma once
#include <ATen/ATen.h>

namespace unlearn::cuda {

// For every row i of `points` (n x d, float32/float64, on a CUDA device), the
// index (int64) of the nearest row j != i. Distances are sum_c (p_ic - p_jc)^2
// summed in column order from 0; exact ties go to the smaller
// tie_key(seed_state(seed), i, j), then the smaller j: the CPU kernel's rule.
at::Tensor nearest_neighbors(const at::Tensor& points, int64_t seed);

}  // namespace unlearn::cuda
