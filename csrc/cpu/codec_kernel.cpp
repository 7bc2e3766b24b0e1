// codec on the CPU: the ranks come from cpu/ranks.h, the neighbours from
// cpu/neighbors.h, and the final ratio is device-agnostic ATen code (common/).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/codec_stat.h"
#include "cpu/neighbors.h"
#include "cpu/ranks.h"
#include "ops/codec.h"

namespace unlearn {
namespace {

at::Tensor codec_cpu(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x, int64_t seed) {
  check_codec(y, z, x);
  return codec_with(cpu::max_ranks(y), z, x, seed,
                    [](const at::Tensor& points, int64_t s) { return cpu::nearest_neighbors(points, s); });
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("codec", &codec_cpu); }

}  // namespace unlearn
