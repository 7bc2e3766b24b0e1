#include <ATen/ATen.h>
#include <torch/library.h>

#include "cpu/neighbors.h"
#include "ops/nearest_neighbor.h"

namespace unlearn {
namespace {

at::Tensor nearest_neighbor_cpu(const at::Tensor& x, int64_t seed) {
  check_nearest_neighbor(x);
  const auto points = x.contiguous();
  auto out = at::empty({points.size(0)}, points.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "nearest_neighbor_cpu", [&] {
    cpu::nearest_neighbors(points.data_ptr<scalar_t>(), points.size(0), points.size(1), seed,
                           out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("nearest_neighbor", &nearest_neighbor_cpu); }

}  // namespace unlearn
