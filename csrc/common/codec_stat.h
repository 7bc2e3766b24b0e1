// The CODEC coefficient from ranks and neighbour indices (any device).
#pragma once
#include <ATen/ATen.h>

#include "common/ranks.h"

namespace unlearn {

// T(y, z | x) from the neighbours M (joint space) and N (x space), or T(y, z)
// when N is absent. Sums are exact int64; the ratio is taken in float64 and
// returned as a 0-d tensor of `dtype`. A conditional denominator of 0 gives 1.
inline at::Tensor codec_from_neighbors(const Ranks& r, const at::Tensor& m,
                                       const std::optional<at::Tensor>& nx,
                                       at::ScalarType dtype) {
  const auto& R = r.up;
  const auto r_m = at::minimum(R, R.index_select(0, m));
  at::Tensor num, den;
  if (nx.has_value()) {
    const auto r_n = at::minimum(R, R.index_select(0, *nx));
    num = (r_m - r_n).sum();
    den = (R - r_n).sum();
    return at::where(den == 0, at::ones({}, num.options().dtype(at::kDouble)),
                     num.to(at::kDouble) / den.to(at::kDouble))
        .to(dtype);
  }
  const auto& L = r.down;
  const int64_t n = R.size(0);
  num = (n * r_m - L * L).sum();
  den = (L * (n - L)).sum();
  return (num.to(at::kDouble) / den.to(at::kDouble)).to(dtype);
}

}  // namespace unlearn
