// Argument check of perturb, shared by its CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include "ops/checks.h"

namespace unlearn {

inline void check_perturb(const at::Tensor& x, int64_t copies, double sigma) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.numel() > 0, "perturb: x must be a non-empty tensor, got shape ", x.sizes());
  check_float("perturb", "x", x);
  TORCH_CHECK_VALUE(copies >= 1, "perturb: copies must be >= 1, got ", copies);
  check_finite_nonnegative("perturb", "sigma", sigma);
}

}  // namespace unlearn
