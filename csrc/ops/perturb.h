// What the CPU and CUDA kernels of perturb share: the argument check and the
// output's allocation.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "ops/checks.h"

namespace unlearn {

// `memory_bytes` is the memory of x's device (physical_memory_bytes() on the
// CPU): the output, copies * x.numel() values, must fit in it.
inline void check_perturb(const at::Tensor& x, int64_t copies, double sigma, int64_t memory_bytes) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.numel() > 0, "perturb: x must be a non-empty tensor, got shape ", x.sizes());
  check_float("perturb", "x", x);
  TORCH_CHECK_VALUE(copies >= 1, "perturb: copies must be >= 1, got ", copies);
  // copies * numel * element size <= memory_bytes, by divisions that cannot overflow.
  const int64_t max_copies = memory_bytes / x.element_size() / x.numel();
  TORCH_CHECK_VALUE(copies <= max_copies, "perturb: copies must be at most ", max_copies, " (copies of x, ", x.numel(),
                    " values of ", x.element_size(), " bytes each, that fit in ", memory_bytes,
                    " bytes of memory), got ", copies);
  check_finite_nonnegative("perturb", "sigma", sigma);
}

// An uninitialised (copies, *src.shape) tensor like src.
inline at::Tensor empty_copies(const at::Tensor& src, int64_t copies) {
  std::vector<int64_t> shape{copies};
  shape.insert(shape.end(), src.sizes().begin(), src.sizes().end());
  return at::empty(shape, src.options());
}

}  // namespace unlearn
