// perturb on CUDA: one thread per output element, the same counter-based
// normal draws as the CPU kernel (common/counter_rng.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "common/counter_rng.h"
#include "ops/perturb.h"

namespace unlearn::cuda {
namespace {

template <typename T>
__global__ void perturb_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t numel, int64_t total,
                               double sigma, uint32_t state) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride) {
    out[k] = in[k % numel] + static_cast<T>(sigma * counter_normal(state, static_cast<uint64_t>(k)));
  }
}

at::Tensor perturb_cuda(const at::Tensor& x, int64_t copies, double sigma, int64_t seed) {
  const c10::cuda::CUDAGuard guard(x.device());
  size_t free_bytes = 0, total_bytes = 0;  // of x's device (torch.cuda.mem_get_info in the twin)
  C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const auto memory =
      static_cast<int64_t>(std::min<size_t>(total_bytes, static_cast<size_t>(std::numeric_limits<int64_t>::max())));
  check_perturb(x, copies, sigma, memory);
  const auto src = x.contiguous();
  auto out = empty_copies(src, copies);
  const int64_t total = out.numel();
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((total + threads - 1) / threads, 65535));
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "perturb_cuda", [&] {
    perturb_kernel<scalar_t><<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), src.numel(), total, sigma, seed_state(seed));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("perturb", &perturb_cuda); }

}  // namespace unlearn::cuda
