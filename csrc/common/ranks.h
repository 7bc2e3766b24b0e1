// Max-ranks of a response: R_i = #{j : y_j <= y_i}, L_i = #{j : y_j >= y_i}.
#pragma once
#include <ATen/ATen.h>

namespace unlearn {

struct Ranks {
  at::Tensor up;    // R, int64 (n)
  at::Tensor down;  // L, int64 (n)
};

// Works on any device: a sort and two searchsorted calls.
inline Ranks max_ranks(const at::Tensor& y) {
  const auto sorted = std::get<0>(y.sort());
  const int64_t n = y.size(0);
  return {at::searchsorted(sorted, y, /*out_int32=*/false, /*right=*/true),
          n - at::searchsorted(sorted, y, /*out_int32=*/false, /*right=*/false)};
}

}  // namespace unlearn
