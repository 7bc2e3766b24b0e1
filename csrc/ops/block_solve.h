// Argument check of block_solve, for its device-generic kernel
// (composite/block_solve_kernel.cpp).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "ops/checks.h"

namespace unlearn {

inline void check_block_solve(at::TensorList blocks, const at::Tensor& g, double damping,
                              const std::vector<bool>& low_rank) {
  TORCH_CHECK_VALUE(!blocks.empty(), "block_solve: blocks is empty");
  TORCH_CHECK_VALUE(low_rank.size() == blocks.size(), "block_solve: low_rank has ", low_rank.size(),
                    " entries but there are ", blocks.size(), " blocks");
  check_finite_nonnegative("block_solve", "damping", damping);
  TORCH_CHECK_VALUE(g.dim() == 1, "block_solve: g must be a 1-D tensor, got ", g.dim(), " dimensions");
  check_float("block_solve", "g", g);
  int64_t total = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& a = blocks[b];
    TORCH_CHECK_VALUE(a.dim() == 2 && a.size(1) > 0 && a.size(0) > 0, "block_solve: block ", b,
                      " must be a non-empty 2-D tensor, got shape ", a.sizes());
    TORCH_CHECK_VALUE(low_rank[b] || a.size(0) == a.size(1), "block_solve: block ", b,
                      " is dense but not square: ", a.sizes());
    TORCH_CHECK_VALUE((a.scalar_type() == g.scalar_type() || a.scalar_type() == at::kFloat) && a.device() == g.device(),
                      "block_solve: block ", b, " must be on g's device (", g.device(), ") with g's dtype (",
                      g.scalar_type(), ") or float32, got ", a.scalar_type(), " on ", a.device());
    TORCH_CHECK_VALUE(!low_rank[b] || a.size(0) >= a.size(1) || damping > 0, "block_solve: block ", b, " has rank ",
                      a.size(0), " < size ", a.size(1), ", so it needs damping > 0");
    total += a.size(1);
  }
  TORCH_CHECK_VALUE(g.size(0) == total, "block_solve: g has ", g.size(0), " entries but the blocks cover ", total,
                    " parameters");
  check_finite("block_solve", "g", g);
  for (size_t b = 0; b < blocks.size(); ++b) {
    check_finite("block_solve", ("block " + std::to_string(b)).c_str(), blocks[b]);
  }
}

}  // namespace unlearn
