// channel_means on CUDA: one block per (sample, channel) reduces its positions
// in float64 and writes the mean into the feature matrix.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/channel_means.h"

namespace unlearn::cuda {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    channel_means_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t channels, int64_t positions,
                         int64_t stride_row, int64_t stride_col, int64_t column) {
  __shared__ double partial[kThreads];
  const int64_t row = blockIdx.x;  // sample * channels + channel
  const T* p = in + row * positions;
  double sum = 0;
  for (int64_t s = threadIdx.x; s < positions; s += kThreads) sum += static_cast<double>(p[s]);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int64_t sample = row / channels, channel = row % channels;
    out[sample * stride_row + (column + channel) * stride_col] =
        static_cast<T>(partial[0] / static_cast<double>(positions));
  }
}

void channel_means_cuda(const at::Tensor& act, at::Tensor& out, int64_t column) {
  check_channel_means(act, out, column);
  const c10::cuda::CUDAGuard guard(act.device());
  const auto src = channel_means_input(act, out);
  const int64_t rows = src.size(0) * src.size(1);
  const int64_t positions = src.numel() / rows;
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "channel_means_cuda", [&] {
    channel_means_kernel<scalar_t><<<rows, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), src.size(1), positions, out.stride(0), out.stride(1),
        column);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("channel_means", &channel_means_cuda); }

}  // namespace unlearn::cuda
