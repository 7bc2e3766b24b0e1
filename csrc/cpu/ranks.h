// Max-ranks of a response on the CPU: one radix sort and one pass over its
// groups of equal values, in place of a comparison sort and two binary
// searches per value (common/ranks.h, the device-agnostic version).
#pragma once
#include <ATen/ATen.h>

#include "common/ranks.h"

namespace unlearn::cpu {

// R_i = #{j : y_j <= y_i} and L_i = #{j : y_j >= y_i} for a float32/float64
// CPU tensor y (n < 2^32, any layout), equal to unlearn::max_ranks(y).
Ranks max_ranks(const at::Tensor& y);

}  // namespace unlearn::cpu
