// Argument check of codec, shared by its CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "ops/checks.h"

namespace unlearn {

inline void check_codec(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x) {
  check_points("codec", "z", z, kMaxRankRows);
  if (x.has_value()) {
    check_points("codec", "x", *x, kMaxRankRows);
    check_same_rows("codec", "x", *x, "z", z);
  }
  check_response("codec", "y", y, z.size(0));
  check_same_device("codec", "y", y, "z", z);
}

}  // namespace unlearn
