// What the CPU and CUDA kernels of perturb share: the argument check and the
// output's allocation.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "ops/checks.h"

namespace unlearn {

inline void check_perturb(const at::Tensor& x, int64_t copies, double sigma) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.numel() > 0, "perturb: x must be a non-empty tensor, got shape ", x.sizes());
  check_float("perturb", "x", x);
  TORCH_CHECK_VALUE(copies >= 1, "perturb: copies must be >= 1, got ", copies);
  check_finite_nonnegative("perturb", "sigma", sigma);
}

// An uninitialised (copies, *src.shape) tensor like src.
inline at::Tensor empty_copies(const at::Tensor& src, int64_t copies) {
  std::vector<int64_t> shape{copies};
  shape.insert(shape.end(), src.sizes().begin(), src.sizes().end());
  return at::empty(shape, src.options());
}

}  // namespace unlearn
