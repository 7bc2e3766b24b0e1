// Argument check of codec_step, for its CPU kernel (the only compiled one).
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "ops/checks.h"

namespace unlearn {

inline void check_codec_step(const at::Tensor& y, const at::Tensor& candidates, const at::Tensor& selected,
                             int64_t row_begin, int64_t row_end, const std::optional<at::Tensor>& cache) {
  check_points("codec_step", "candidates", candidates, kMaxRankRows);
  const int64_t n = candidates.size(0);
  check_response("codec_step", "y", y, n);
  check_same_device("codec_step", "y", y, "candidates", candidates);
  TORCH_CHECK_VALUE(selected.dim() == 2, "codec_step: selected must be a 2-D tensor of shape (n, s), got ",
                    selected.dim(), " dimensions");
  check_same_rows("codec_step", "selected", selected, "candidates", candidates);
  check_finite("codec_step", "selected", selected);
  TORCH_CHECK_VALUE(0 <= row_begin && row_begin < row_end && row_end <= n,
                    "codec_step: rows must satisfy 0 <= row_begin < row_end <= ", n, ", got [", row_begin, ", ",
                    row_end, ")");
  if (cache.has_value()) {
    const auto& c = *cache;
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(0) == row_end - row_begin && c.size(1) == n,
                      "codec_step: cache must hold the rows [row_begin, row_end) of D_S, shape (", row_end - row_begin,
                      ", ", n, "), got ", c.sizes());
    TORCH_CHECK_VALUE(c.scalar_type() == candidates.scalar_type() && c.device() == candidates.device(),
                      "codec_step: cache must have the dtype and device of candidates");
    // The row scans gather the distances in increasing tiers: a NaN or -inf is
    // never gathered (the scan would not end), and squared distances are >= 0.
    // +inf is a squared distance past the dtype's range, as D_S itself holds.
    TORCH_CHECK_VALUE(!at::isnan(c).any().item<bool>(), "codec_step: cache contains NaN values");
    TORCH_CHECK_VALUE(!(c < 0).any().item<bool>(),
                      "codec_step: cache has negative values, but squared distances are >= 0");
  }
}

}  // namespace unlearn
