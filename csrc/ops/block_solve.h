// Argument check of block_solve, for its device-generic kernel
// (composite/block_solve_kernel.cpp).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "ops/checks.h"

namespace unlearn {

// Rows of a factor (m x d) brought to another dtype at a time: about 4 MiB of
// float64, so that neither the check nor the solve of a factor sized to a
// memory budget holds a converted copy of it whole. The twin takes the same.
inline int64_t conversion_rows(int64_t d) { return std::max<int64_t>(1, (int64_t{1} << 19) / std::max<int64_t>(1, d)); }

// The largest diagonal entry of U^T U / m in `dtype`: column sums of squares
// summed chunk by chunk of `conversion_rows` rows, in the twin's order.
inline at::Tensor largest_diagonal(const at::Tensor& a, at::ScalarType dtype) {
  const int64_t rows = conversion_rows(a.size(1));
  at::Tensor sums;
  for (int64_t start = 0; start < a.size(0); start += rows) {
    const auto part = a.narrow(0, start, std::min(rows, a.size(0) - start)).to(dtype).square().sum(0);
    sums = sums.defined() ? sums + part : part;
  }
  return (sums / static_cast<double>(a.size(0))).max();
}

// The dtype a factor's product (U^T U or U U^T) is formed in: its own, as
// accurate as its entries, but g's where a float32 factor's entries are so
// large or small that float32 products would overflow or underflow. The twin
// decides alike.
inline at::ScalarType product_dtype(const at::Tensor& a, at::ScalarType g_dtype) {
  if (a.scalar_type() == g_dtype || a.numel() == 0) return a.scalar_type();
  const auto [low, high] = at::aminmax(a);  // one pass over the factor, one read of the result
  const double top = at::maximum(high, -low).item<double>();
  return (top > 0x1p40 || top < 0x1p-50) ? g_dtype : a.scalar_type();
}

// The power of two (a float64 exponent per block, shaped like `size`) that
// scales g before the solve (which is linear): g's largest entry `size` is
// brought to about the square root of `top` (the block's largest diagonal
// entry) plus the damping, so that g, the solution (about g over that) and
// U g all stay within the dtype's range. 0 where either is 0 or not finite.
inline at::Tensor scale_exponent(const at::Tensor& size, const at::Tensor& top, double damping) {
  const auto lam = top + damping;
  const auto k = at::round(0.5 * at::log2(lam) - at::log2(size)).clamp(-1000, 1000);
  const auto usable = (size > 0).logical_and(lam > 0).logical_and(at::isfinite(lam)).logical_and(at::isfinite(k));
  return at::where(usable, k, at::zeros_like(k));
}

// Checks every argument; returns the largest diagonal entries (in g's dtype)
// the rounding check of the damping computed, for the factors with m < d
// (undefined for the other blocks), so that the solve need not sum them again.
inline std::vector<at::Tensor> check_block_solve(at::TensorList blocks, const at::Tensor& g, double damping,
                                                 const std::vector<bool>& low_rank) {
  TORCH_CHECK_VALUE(!blocks.empty(), "block_solve: blocks is empty");
  TORCH_CHECK_VALUE(low_rank.size() == blocks.size(), "block_solve: low_rank has ", low_rank.size(),
                    " entries but there are ", blocks.size(), " blocks");
  check_finite_nonnegative("block_solve", "damping", damping);
  TORCH_CHECK_VALUE(g.dim() == 1, "block_solve: g must be a 1-D tensor, got ", g.dim(), " dimensions");
  check_float("block_solve", "g", g);
  const double most =
      g.scalar_type() == at::kFloat ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
  TORCH_CHECK_VALUE(damping <= most, "block_solve: damping ", python_repr(damping), " overflows g's dtype (",
                    g.scalar_type() == at::kFloat ? "float32" : "float64", ", at most ", python_repr(most), ")");
  __int128 total = 0;  // blocks (expanded views, say) may cover more than int64 counts
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
  TORCH_CHECK_VALUE(g.size(0) == total, "block_solve: g has ", g.size(0), " entries but the blocks cover ",
                    to_string(total), " parameters");
  check_finite("block_solve", "g", g);
  for (size_t b = 0; b < blocks.size(); ++b) {
    check_finite("block_solve", ("block " + std::to_string(b)).c_str(), blocks[b]);
  }
  // A factor with m < d leaves the damping as the smallest eigenvalue: lost
  // in rounding next to the largest diagonal entry of U^T U / m, the damped
  // matrix is singular in g's dtype (the Woodbury solve divides by a damping
  // that no longer counts). Computed with the twin's very tensor ops, in
  // chunks.
  std::vector<at::Tensor> largest(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto& a = blocks[b];
    if (!low_rank[b] || a.size(0) >= a.size(1)) continue;
    largest[b] = largest_diagonal(a, g.scalar_type());
    TORCH_CHECK_VALUE(!(largest[b] + damping == largest[b]).item<bool>(), "block_solve: block ", b, " has rank ",
                      a.size(0), " < size ", a.size(1), ", so it needs a damping not lost in rounding next to its ",
                      "largest diagonal entry ", python_repr(largest[b].item<double>()), ", got ",
                      python_repr(damping));
  }
  return largest;
}

}  // namespace unlearn
