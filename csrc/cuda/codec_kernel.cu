// codec on CUDA: ranks and the final ratio are device-agnostic ATen code
// (common/), the neighbours come from the tiled CUDA nearest-neighbour scan.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/codec_stat.h"
#include "cuda/nearest_neighbor.cuh"
#include "ops/codec.h"

namespace unlearn::cuda {
namespace {

at::Tensor codec_cuda(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x, int64_t seed) {
  check_codec(y, z, x);
  const c10::cuda::CUDAGuard guard(z.device());
  return codec_with(max_ranks(y), z, x, seed,
                    [](const at::Tensor& points, int64_t s) { return nearest_neighbors(points, s); });
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("codec", &codec_cuda); }

}  // namespace unlearn::cuda
