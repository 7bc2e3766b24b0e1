#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/codec_stat.h"
#include "cpu/neighbors.h"
#include "ops/codec.h"

namespace unlearn {
namespace {

at::Tensor neighbors_of(const at::Tensor& points, int64_t seed) {
  auto out = at::empty({points.size(0)}, points.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "codec_cpu", [&] {
    cpu::nearest_neighbors(points.data_ptr<scalar_t>(), points.size(0), points.size(1), seed,
                           out.data_ptr<int64_t>());
  });
  return out;
}

at::Tensor codec_cpu(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x,
                     int64_t seed) {
  check_codec(y, z, x);
  const Ranks ranks = max_ranks(y);
  // Joint space (x, z): x's columns first, the order the distances are summed in.
  const auto joint = x.has_value() ? at::cat({*x, z}, 1).contiguous() : z.contiguous();
  const auto m = neighbors_of(joint, seed);
  std::optional<at::Tensor> nx;
  if (x.has_value()) nx = neighbors_of(x->contiguous(), seed);
  return codec_from_neighbors(ranks, m, nx, z.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("codec", &codec_cpu); }

}  // namespace unlearn
