// The CODEC coefficient from ranks and neighbour indices, and codec on a
// backend's neighbour search: ATen code that runs on any device.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "common/exact_sum.h"
#include "common/ranks.h"

namespace unlearn {

// T(y, z | x) from the neighbours M (joint space) and N (x space), or T(y, z)
// when N is absent. Every term is an int64 (n^2 fits: ops/checks.h,
// kMaxRankRows); the numerator and denominator are summed exactly (they reach
// n^3, past int64), each rounded once to float64, and their ratio is returned
// as a 0-d tensor of `dtype` on the ranks' device. A conditional denominator of
// 0 gives 1.
inline at::Tensor codec_from_neighbors(const Ranks& r, const at::Tensor& m, const std::optional<at::Tensor>& nx,
                                       at::ScalarType dtype) {
  const auto& R = r.up;
  const auto r_m = at::minimum(R, R.index_select(0, m));
  double ratio = 1;
  if (nx.has_value()) {
    const auto r_n = at::minimum(R, R.index_select(0, *nx));
    const __int128 num = exact_sum(r_m - r_n), den = exact_sum(R - r_n);
    if (den != 0) ratio = static_cast<double>(num) / static_cast<double>(den);
  } else {
    const auto& L = r.down;
    const int64_t n = R.size(0);
    const __int128 num = exact_sum(n * r_m - L * L), den = exact_sum(L * (n - L));
    ratio = static_cast<double>(num) / static_cast<double>(den);
  }
  return at::scalar_tensor(ratio, R.options().dtype(at::kDouble)).to(dtype);
}

// codec(y, z, x): T(y, z | x), or T(y, z) when x is absent, from the max-ranks
// of y and the neighbours from a backend's exact search `neighbors(points, seed)`.
template <typename Neighbors>
at::Tensor codec_with(const Ranks& ranks, const at::Tensor& z, const std::optional<at::Tensor>& x, int64_t seed,
                      const Neighbors& neighbors) {
  // Joint space (x, z): x's columns first, the order the distances are summed in.
  const auto joint = x.has_value() ? at::cat({*x, z}, 1) : z;
  const auto m = neighbors(joint, seed);
  std::optional<at::Tensor> nx;
  if (x.has_value()) nx = neighbors(*x, seed);
  return codec_from_neighbors(ranks, m, nx, z.scalar_type());
}

}  // namespace unlearn
