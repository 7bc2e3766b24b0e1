// Argument check of channel_means, shared by its CPU and CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include "ops/checks.h"

namespace unlearn {

inline void check_channel_means(const at::Tensor& act, const at::Tensor& out, int64_t column) {
  TORCH_CHECK_VALUE(act.dim() >= 2 && act.numel() > 0,
                    "channel_means: act must be a non-empty tensor of shape (N, C, ...), got ", act.sizes());
  check_float("channel_means", "act", act);
  TORCH_CHECK_VALUE(out.dim() == 2 && out.size(0) == act.size(0),
                    "channel_means: out must have shape (N, columns) with N = ", act.size(0), ", got ", out.sizes());
  TORCH_CHECK_VALUE(out.scalar_type() == act.scalar_type() && out.device() == act.device(),
                    "channel_means: out must match act's dtype and device");
  check_no_overlap("channel_means", "out", out);
  // column + C <= columns, written without a sum that could overflow.
  TORCH_CHECK_VALUE(column >= 0 && act.size(1) <= out.size(1) && column <= out.size(1) - act.size(1),
                    "channel_means: column ", column, " + ", act.size(1), " channels exceeds out's ", out.size(1),
                    " columns");
}

// The activations as the kernels read them: contiguous, and a copy of their
// own when they share memory with `out` (the kernels write while they read).
inline at::Tensor channel_means_input(const at::Tensor& act, const at::Tensor& out) {
  return act.is_alias_of(out) ? act.clone(at::MemoryFormat::Contiguous) : act.contiguous();
}

}  // namespace unlearn
