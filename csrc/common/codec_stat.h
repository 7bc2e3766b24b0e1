// The CODEC coefficient from ranks and neighbour indices, and codec on a
// backend's neighbour search: ATen code that runs on any device.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "common/ranks.h"

namespace unlearn {

// T(y, z | x) from the neighbours M (joint space) and N (x space), or T(y, z)
// when N is absent. Sums are exact int64; the ratio is taken in float64 and
// returned as a 0-d tensor of `dtype`. A conditional denominator of 0 gives 1.
inline at::Tensor codec_from_neighbors(const Ranks& r, const at::Tensor& m, const std::optional<at::Tensor>& nx,
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

// codec(y, z, x): T(y, z | x), or T(y, z) when x is absent, with the
// neighbours from a backend's exact search `neighbors(points, seed)`.
template <typename Neighbors>
at::Tensor codec_with(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x, int64_t seed,
                      const Neighbors& neighbors) {
  const Ranks ranks = max_ranks(y);
  // Joint space (x, z): x's columns first, the order the distances are summed in.
  const auto joint = x.has_value() ? at::cat({*x, z}, 1) : z;
  const auto m = neighbors(joint, seed);
  std::optional<at::Tensor> nx;
  if (x.has_value()) nx = neighbors(*x, seed);
  return codec_from_neighbors(ranks, m, nx, z.scalar_type());
}

}  // namespace unlearn
