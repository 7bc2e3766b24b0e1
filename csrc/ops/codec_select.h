// Argument check of codec_select, shared by its CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include "ops/checks.h"

namespace unlearn {

inline void check_codec_select(const at::Tensor& y, const at::Tensor& features, int64_t max_select,
                               int64_t max_cache_bytes) {
  check_points("codec_select", "features", features, kMaxRankRows);
  check_response("codec_select", "y", y, features.size(0));
  check_same_device("codec_select", "y", y, "features", features);
  const int64_t p = features.size(1);
  TORCH_CHECK_VALUE(max_select >= 1 && max_select <= p,
                    "codec_select: max_select must be between 1 and the number of columns (", p, "), got ", max_select);
  TORCH_CHECK_VALUE(max_cache_bytes >= 0, "codec_select: max_cache_bytes must be >= 0, got ", max_cache_bytes);
}

}  // namespace unlearn
