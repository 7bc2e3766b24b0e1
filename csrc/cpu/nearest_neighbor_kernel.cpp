// nearest_neighbor on the CPU: the k-d tree or dense scan of
// cpu/neighbors.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "cpu/neighbors.h"
#include "ops/nearest_neighbor.h"

namespace unlearn {
namespace {

at::Tensor nearest_neighbor_cpu(const at::Tensor& x, int64_t seed) {
  check_nearest_neighbor(x);
  return cpu::nearest_neighbors(x, seed);
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("nearest_neighbor", &nearest_neighbor_cpu); }

}  // namespace unlearn
