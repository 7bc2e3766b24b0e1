// nearest_neighbor on CUDA: a tiled brute-force scan.
//
// A block owns kRows query rows, one per thread, and walks the point set in
// tiles of kTile points. The columns are read in chunks of kCols through shared
// memory, so any d works with O(1) shared memory; each thread keeps the partial
// distances to the kTile points of the tile in registers and its running best
// (unlearn::Nearest) across tiles. Extra memory is the output only.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "common/tie_key.h"
#include "cuda/nearest_neighbor.cuh"
#include "ops/nearest_neighbor.h"

namespace unlearn::cuda {
namespace {

constexpr int kRows = 128;  // query rows per block (= threads)
constexpr int kTile = 32;   // points per tile
constexpr int kCols = 32;   // columns per shared-memory chunk

template <typename T>
__global__ void __launch_bounds__(kRows)
    nearest_neighbor_kernel(const T* __restrict__ x, int64_t n, int64_t d, uint32_t state, int64_t* __restrict__ out) {
  __shared__ T query[kRows][kCols + 1];  // +1: conflict-free row reads
  __shared__ T tile[kTile][kCols];       // read as broadcasts
  const int t = threadIdx.x;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t i = row0 + t;
  const bool one_chunk = d <= kCols;  // then the query chunk is loaded once

  Nearest<T> best = no_neighbor<T>();
  for (int64_t k0 = 0; k0 < n; k0 += kTile) {
    T acc[kTile];
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc[kk] = T(0);
    for (int64_t c0 = 0; c0 < d; c0 += kCols) {
      const int cn = static_cast<int>(d - c0 < kCols ? d - c0 : kCols);
      __syncthreads();  // the previous chunk has been read
      if (!one_chunk || k0 == 0) {
        for (int e = t; e < kRows * kCols; e += kRows) {
          const int r = e / kCols, c = e % kCols;
          const int64_t row = row0 + r;
          query[r][c] = (row < n && c < cn) ? x[row * d + c0 + c] : T(0);
        }
      }
      for (int e = t; e < kTile * kCols; e += kRows) {
        const int r = e / kCols, c = e % kCols;
        const int64_t k = k0 + r;
        tile[r][c] = (k < n && c < cn) ? x[k * d + c0 + c] : T(0);
      }
      __syncthreads();
      // Columns in order, so every pair's sum is added in the CPU's order.
      for (int c = 0; c < cn; ++c) {
        const T q = query[t][c];
#pragma unroll
        for (int kk = 0; kk < kTile; ++kk) {
          const T diff = q - tile[kk][c];
          acc[kk] = acc[kk] + diff * diff;
        }
      }
    }
    if (i < n) {
#pragma unroll
      for (int kk = 0; kk < kTile; ++kk) {
        const int64_t k = k0 + kk;
        if (k < n && k != i) best.offer(acc[kk], state, i, k);
      }
    }
  }
  if (i < n) out[i] = best.index;
}

at::Tensor nearest_neighbor_cuda(const at::Tensor& x, int64_t seed) {
  check_nearest_neighbor(x);
  return nearest_neighbors(x, seed);
}

}  // namespace

at::Tensor nearest_neighbors(const at::Tensor& points, int64_t seed) {
  const c10::cuda::CUDAGuard guard(points.device());
  const auto x = points.contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  auto out = at::empty({n}, x.options().dtype(at::kLong));
  const auto blocks = static_cast<unsigned>((n + kRows - 1) / kRows);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "nearest_neighbor_cuda", [&] {
    nearest_neighbor_kernel<scalar_t>
        <<<blocks, kRows, 0, stream>>>(x.data_ptr<scalar_t>(), n, d, seed_state(seed), out.data_ptr<int64_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("nearest_neighbor", &nearest_neighbor_cuda); }

}  // namespace unlearn::cuda
