// Argument check of nearest_neighbor, shared by its CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include "ops/checks.h"

namespace unlearn {

inline void check_nearest_neighbor(const at::Tensor& x) { check_points("nearest_neighbor", "x", x); }

}  // namespace unlearn
