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

at::Tensor codec_cuda(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x,
                      int64_t seed) {
  check_codec(y, z, x);
  const c10::cuda::CUDAGuard guard(z.device());
  const Ranks ranks = max_ranks(y);
  // Joint space (x, z): x's columns first, the order the distances are summed in.
  const auto joint = x.has_value() ? at::cat({*x, z}, 1) : z;
  const auto m = nearest_neighbors(joint, seed);
  std::optional<at::Tensor> nx;
  if (x.has_value()) nx = nearest_neighbors(*x, seed);
  return codec_from_neighbors(ranks, m, nx, z.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("codec", &codec_cuda); }

}  // namespace unlearn::cuda
