// codec_select (FOCI forward selection) on CUDA, fused (DESIGN.md 2.2).
//
// Step 1 sorts every column (at::sort) and finds each point's 1-D neighbour
// next to it in sorted order (`first_step_kernel`): O(p n log n), with the
// CPU kernel's walk over groups of equal values, so ties match. Every later
// step is one pass of `step_kernel` over D_S(i, k), the squared distance in
// the space of the selected columns S. For each row i
// and each candidate column j it finds M_j(i) = argmin_{k != i} D_S(i, k) +
// (f_ij - f_kj)^2 with the Nearest tie rule, and adds min(R_i, R_{M_j(i)}) to
// num_j. The features are stored zero-padded with an all-zero column at index
// p: its "neighbour" is argmin_k D_S(i, k) + 0 = N(i), the S-space neighbour,
// so the same pass yields sum_i min(R_i, R_N(i)). A one-block kernel then picks
// argmax num_j over the unselected columns (lowest index on ties); its three
// numbers are the only host synchronisation of a step. After a pick, D_S is
// updated in place (cache) or, when n^2 does not fit in max_cache_bytes,
// recomputed per tile from the picked columns. Both add the picks in order,
// starting from 0, exactly as the CPU kernel does.
//
// Work layout of step_kernel: a warp owns kRowsPerWarp rows and 32 * kCols
// candidate columns (kCols per lane; a block = kWarps warps on the same
// candidates). The warp stages D_S(rows, k0 .. k0 + 31) in shared memory, so
// every tile of D_S is read once for all the block's candidates. Each lane
// keeps, per (row, candidate) pair, f_ij and the running best (distance,
// index) in registers. Since the added term is >= 0, a k with D_S(i, k) above
// the largest running best of the lane's candidates for row i cannot win or
// tie; such k are skipped (the CPU kernel's pruning), which makes the later
// steps far cheaper than p n^2 distance updates.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/ranks.h"
#include "common/tie_key.h"
#include "ops/codec_select.h"

namespace unlearn::cuda {
namespace {

constexpr int kWarps = 8;        // warps per block
constexpr int kRowsPerWarp = 4;  // rows i per warp (and per lane)
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kPickThreads = 1024;

// Candidate columns per lane: as many as the registers allow.
template <typename T>
constexpr int cols_per_lane() {
  return sizeof(T) == 4 ? 8 : 4;
}

enum class Dist { kCache, kRecompute };

// Offers k at distance v == bd to the running best (bd, bi) of row i: the
// Nearest<T>::offer rule, with the best's key recomputed from its index.
template <typename T>
__device__ __forceinline__ void offer_tie(T& bd, int& bi, T v, uint32_t state, int64_t i,
                                          int64_t k) {
  Nearest<T> best{bd, bi < 0 ? 0xffffffffu : tie_key(state, i, bi), bi};
  best.offer(v, state, i, k);
  bd = best.dist;
  bi = static_cast<int>(best.index);
}

// feat: n x P, row-major, zero-padded (column p is all zeros).
// cache: n x n D_S (kCache). picked: nsel x n, the picked columns in pick order
// (kRecompute). num: P sums, zeroed before the launch.
template <typename T, Dist kMode>
__global__ void __launch_bounds__(kWarps * 32)
    step_kernel(const T* __restrict__ feat, int64_t n, int64_t P, const T* __restrict__ cache,
                const T* __restrict__ picked, int nsel, const int64_t* __restrict__ R,
                uint32_t state, unsigned long long* __restrict__ num) {
  constexpr int RI = kRowsPerWarp;
  constexpr int RJ = cols_per_lane<T>();
  __shared__ __align__(16) T dtile[kWarps][32][RI];  // D_S(row r, k0 + kk), read as broadcasts
  __shared__ long long partial[kWarps][32 * RJ];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t jb = static_cast<int64_t>(blockIdx.x) * (32 * RJ) + lane * RJ;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.y) * kWarps + warp) * RI;

  long long sums[RJ];
#pragma unroll
  for (int c = 0; c < RJ; ++c) sums[c] = 0;

  if (row0 < n) {  // uniform over the warp
    int64_t rows[RI];
    T fi[RI][RJ], bd[RI][RJ], thr[RI];
    int bi[RI][RJ];
#pragma unroll
    for (int r = 0; r < RI; ++r) {
      rows[r] = row0 + r < n ? row0 + r : n - 1;  // tail rows repeat the last row, unused
      thr[r] = std::numeric_limits<T>::infinity();
#pragma unroll
      for (int c = 0; c < RJ; ++c) {
        fi[r][c] = feat[rows[r] * P + jb + c];
        bd[r][c] = std::numeric_limits<T>::infinity();
        bi[r][c] = -1;
      }
    }

    for (int64_t k0 = 0; k0 < n; k0 += 32) {
      const int kn = n - k0 < 32 ? static_cast<int>(n - k0) : 32;
      {
        const int64_t k = k0 + lane;
        T dv[RI];
#pragma unroll
        for (int r = 0; r < RI; ++r) dv[r] = T(0);
        if (k < n) {
          if constexpr (kMode == Dist::kCache) {
#pragma unroll
            for (int r = 0; r < RI; ++r) dv[r] = cache[rows[r] * n + k];
          } else {
            for (int s = 0; s < nsel; ++s) {  // picks in order, as the cache adds them
              const T* col = picked + static_cast<int64_t>(s) * n;
              const T fk = col[k];
#pragma unroll
              for (int r = 0; r < RI; ++r) {
                const T diff = col[rows[r]] - fk;
                dv[r] = dv[r] + diff * diff;
              }
            }
          }
        }
        __syncwarp();  // the previous tile has been read
#pragma unroll
        for (int r = 0; r < RI; ++r) dtile[warp][lane][r] = dv[r];
        __syncwarp();
      }

      for (int kk = 0; kk < kn; ++kk) {
        const int64_t k = k0 + kk;
        T dk[RI];
        bool any = false;
#pragma unroll
        for (int r = 0; r < RI; ++r) {
          dk[r] = dtile[warp][kk][r];
          any = any || dk[r] <= thr[r];
        }
        if (!any) continue;
        T fk[RJ];
#pragma unroll
        for (int c = 0; c < RJ; ++c) fk[c] = __ldg(feat + k * P + jb + c);
#pragma unroll
        for (int r = 0; r < RI; ++r) {
          if (!(dk[r] <= thr[r])) continue;
          bool changed = false;
#pragma unroll
          for (int c = 0; c < RJ; ++c) {
            const T diff = fi[r][c] - fk[c];
            const T v = dk[r] + diff * diff;
            if (v <= bd[r][c] && k != rows[r]) {
              if (v < bd[r][c]) {
                bd[r][c] = v;
                bi[r][c] = static_cast<int>(k);
              } else {
                offer_tie(bd[r][c], bi[r][c], v, state, rows[r], k);
              }
              changed = true;
            }
          }
          if (changed) {
            T m = bd[r][0];
#pragma unroll
            for (int c = 1; c < RJ; ++c) m = bd[r][c] > m ? bd[r][c] : m;
            thr[r] = m;
          }
        }
      }
    }

#pragma unroll
    for (int r = 0; r < RI; ++r) {
      if (row0 + r >= n) continue;
      const int64_t ri = R[rows[r]];
#pragma unroll
      for (int c = 0; c < RJ; ++c) {
        const int64_t rm = bi[r][c] >= 0 ? R[bi[r][c]] : ri;
        sums[c] += ri < rm ? ri : rm;
      }
    }
  }

#pragma unroll
  for (int c = 0; c < RJ; ++c) partial[warp][lane * RJ + c] = sums[c];
  __syncthreads();
  for (int t = threadIdx.x; t < 32 * RJ; t += blockDim.x) {
    long long s = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) s += partial[w][t];
    atomicAdd(num + static_cast<int64_t>(blockIdx.x) * (32 * RJ) + t,
              static_cast<unsigned long long>(s));
  }
}

// Step 1 for column j = blockIdx.y (strided): thread t takes the point at
// sorted position t, offers every other point of its group of equal values at
// distance 0, then walks outwards group by group while the squared gap can
// still tie (the CPU kernel's walk), and adds min(R_i, R_M(i)) to num[j].
template <typename T>
__global__ void first_step_kernel(const T* __restrict__ sorted, const int64_t* __restrict__ order,
                                  int64_t n, int64_t p, const int64_t* __restrict__ R,
                                  uint32_t state, unsigned long long* __restrict__ num) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t j = blockIdx.y; j < p; j += gridDim.y) {
    unsigned long long value = 0;
    if (t < n) {
      const T* v = sorted + j * n;
      const int64_t* ord = order + j * n;
      const int64_t i = ord[t];
      const T vi = v[t];
      Nearest<T> best = no_neighbor<T>();
      int64_t lo = t, hi = t + 1;
      while (lo > 0 && v[lo - 1] == vi) --lo;
      while (hi < n && v[hi] == vi) ++hi;
      for (int64_t u = lo; u < hi; ++u) {
        if (u != t) best.offer(T(0), state, i, ord[u]);
      }
      for (int64_t pos = lo - 1; pos >= 0;) {
        const T g = v[pos];
        const T diff = vi - g;
        const T dist = diff * diff;
        if (dist > best.dist) break;
        for (; pos >= 0 && v[pos] == g; --pos) best.offer(dist, state, i, ord[pos]);
      }
      for (int64_t pos = hi; pos < n;) {
        const T g = v[pos];
        const T diff = vi - g;
        const T dist = diff * diff;
        if (dist > best.dist) break;
        for (; pos < n && v[pos] == g; ++pos) best.offer(dist, state, i, ord[pos]);
      }
      const int64_t rm = R[best.index];
      value = static_cast<unsigned long long>(R[i] < rm ? R[i] : rm);
    }
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
    if ((threadIdx.x & 31) == 0 && value != 0) atomicAdd(num + j, value);
  }
}

// One block: out = {argmax of num over the unselected j < p (lowest index on
// ties), its num, num[p] = sum_i min(R_i, R_N(i))}.
__global__ void __launch_bounds__(kPickThreads)
    pick_kernel(const int64_t* __restrict__ num, const bool* __restrict__ taken, int64_t p,
                int64_t* __restrict__ out) {
  __shared__ int64_t best_num[kPickThreads];
  __shared__ int64_t best_j[kPickThreads];
  int64_t bn = -1, bj = -1;
  for (int64_t j = threadIdx.x; j < p; j += kPickThreads) {  // increasing j: strict > keeps the lowest
    if (!taken[j] && num[j] > bn) {
      bn = num[j];
      bj = j;
    }
  }
  best_num[threadIdx.x] = bn;
  best_j[threadIdx.x] = bj;
  __syncthreads();
  for (int half = kPickThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const int64_t on = best_num[threadIdx.x + half], oj = best_j[threadIdx.x + half];
      if (on > bn || (on == bn && oj >= 0 && oj < bj)) {
        bn = on;
        bj = oj;
        best_num[threadIdx.x] = bn;
        best_j[threadIdx.x] = bj;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[0] = bj;
    out[1] = bn;
    out[2] = num[p];
  }
}

// D_S(i, k) += (c_i - c_k)^2 for the picked column c.
template <typename T>
__global__ void add_column_kernel(T* __restrict__ cache, const T* __restrict__ col, int64_t n) {
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const T a = col[i];
    T* row = cache + i * n;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
         k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const T diff = a - col[k];
      row[k] = row[k] + diff * diff;
    }
  }
}

template <typename T>
void select_columns(const at::Tensor& y, const at::Tensor& features, int64_t max_select,
                    bool stop_early, int64_t seed, int64_t max_cache_bytes,
                    std::vector<int64_t>& order, std::vector<double>& scores) {
  constexpr int cands_per_block = 32 * cols_per_lane<T>();
  const int64_t n = features.size(0), p = features.size(1);
  const int64_t row_blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  TORCH_CHECK(row_blocks <= 65535, "codec_select: CUDA kernel supports at most ",
              65535 * kRowsPerBlock, " rows, got ", n);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const uint32_t state = seed_state(seed);

  // Ranks once per call; the constant sums are read once, before the steps.
  const Ranks ranks = max_ranks(y);
  const auto R = ranks.up.contiguous();
  const auto& L = ranks.down;
  const int64_t sum_r = R.sum().item<int64_t>();
  const int64_t sum_l2 = (L * L).sum().item<int64_t>();
  const int64_t den_u = (L * (n - L)).sum().item<int64_t>();

  // Candidates padded to whole blocks; column p (zero) gives the S-space neighbour.
  const int64_t P = (p + 1 + cands_per_block - 1) / cands_per_block * cands_per_block;
  auto feat = at::zeros({n, P}, features.options());
  feat.narrow(1, 0, p).copy_(features);
  const auto cols_t = features.t().contiguous();  // column j is contiguous
  const bool use_cache = static_cast<double>(n) * n * sizeof(T) <= max_cache_bytes;
  auto cache = use_cache ? at::zeros({n, n}, features.options()) : at::Tensor();
  auto picked = use_cache ? at::Tensor() : at::empty({max_select, n}, features.options());
  auto num = at::empty({P}, features.options().dtype(at::kLong));
  auto taken = at::zeros({p}, features.options().dtype(at::kBool));
  auto result = at::empty({3}, features.options().dtype(at::kLong));

  const dim3 grid(static_cast<unsigned>(P / cands_per_block), static_cast<unsigned>(row_blocks));
  // The pick after num is filled: {pick, num, self}, the step's only synchronisation.
  const auto pick = [&]() {
    pick_kernel<<<1, kPickThreads, 0, stream>>>(num.data_ptr<int64_t>(), taken.data_ptr<bool>(),
                                                p, result.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto host = result.cpu();
    const int64_t* h = host.data_ptr<int64_t>();
    return std::vector<int64_t>{h[0], h[1], h[2]};
  };
  // Step 1: every column sorted once, each point's 1-D neighbour next to it.
  const auto first_step = [&]() {
    num.zero_();
    const auto sorted = at::sort(cols_t, /*dim=*/1);
    const auto values = std::get<0>(sorted).contiguous();
    const auto indices = std::get<1>(sorted).contiguous();
    const dim3 blocks(static_cast<unsigned>((n + 255) / 256),
                      static_cast<unsigned>(std::min<int64_t>(p, 65535)));
    first_step_kernel<T><<<blocks, 256, 0, stream>>>(
        values.data_ptr<T>(), indices.data_ptr<int64_t>(), n, p, R.data_ptr<int64_t>(), state,
        reinterpret_cast<unsigned long long*>(num.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return pick();
  };
  // A later step: every candidate's num over D_S, then the pick.
  const auto run_step = [&](Dist mode, int nsel) {
    num.zero_();
    const T* f = feat.data_ptr<T>();
    const T* c = use_cache ? cache.data_ptr<T>() : nullptr;
    const T* s = use_cache ? nullptr : picked.data_ptr<T>();
    auto* out = reinterpret_cast<unsigned long long*>(num.data_ptr<int64_t>());
    const int64_t* r = R.data_ptr<int64_t>();
    switch (mode) {
      case Dist::kCache:
        step_kernel<T, Dist::kCache><<<grid, kWarps * 32, 0, stream>>>(f, n, P, c, s, nsel, r,
                                                                        state, out);
        break;
      case Dist::kRecompute:
        step_kernel<T, Dist::kRecompute><<<grid, kWarps * 32, 0, stream>>>(f, n, P, c, s, nsel,
                                                                            r, state, out);
        break;
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return pick();
  };
  // Adds column j to S: D_S in place, or the list the tiles are recomputed from.
  const auto add = [&](int64_t j, int64_t s) {
    taken[j].fill_(true);
    if (use_cache) {
      const dim3 blocks(static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 64)),
                        static_cast<unsigned>(std::min<int64_t>(n, 4096)));
      add_column_kernel<T><<<blocks, 256, 0, stream>>>(cache.data_ptr<T>(),
                                                       cols_t[j].data_ptr<T>(), n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      picked[s].copy_(cols_t[j]);
    }
  };

  // Step 1: unconditional T(y, f_j) = (n num_j - sum L^2) / sum L (n - L).
  const auto first = first_step();
  const double t1 = static_cast<double>(n * first[1] - sum_l2) / static_cast<double>(den_u);
  if (stop_early && t1 <= 0) return;
  order.push_back(first[0]);
  scores.push_back(t1);
  add(first[0], 0);
  for (int64_t s = 1; s < max_select; ++s) {
    const auto sums = run_step(use_cache ? Dist::kCache : Dist::kRecompute, static_cast<int>(s));
    const int64_t self = sums[2], den = sum_r - self;
    // y is already a function of the selected columns: nothing is left to explain.
    if (den == 0) return;
    const double t = static_cast<double>(sums[1] - self) / static_cast<double>(den);
    if (stop_early && t <= 0) return;
    order.push_back(sums[0]);
    scores.push_back(t);
    add(sums[0], s);
  }
}

std::tuple<at::Tensor, at::Tensor> codec_select_cuda(const at::Tensor& y,
                                                     const at::Tensor& features,
                                                     int64_t max_select, bool stop_early,
                                                     int64_t seed, int64_t max_cache_bytes) {
  check_codec_select(y, features, max_select, max_cache_bytes);
  const c10::cuda::CUDAGuard guard(features.device());
  const auto f = features.contiguous();
  std::vector<int64_t> picks;
  std::vector<double> values;
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "codec_select_cuda", [&] {
    select_columns<scalar_t>(y, f, max_select, stop_early, seed, max_cache_bytes, picks, values);
  });
  // -1 / NaN padding after the last pick, as on the CPU.
  auto order = at::full({max_select}, -1, at::dtype(at::kLong));
  auto scores = at::full({max_select}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
  std::copy(picks.begin(), picks.end(), order.data_ptr<int64_t>());
  std::copy(values.begin(), values.end(), scores.data_ptr<double>());
  return {order.to(f.device()), scores.to(f.scalar_type()).to(f.device())};
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CUDA, m) { m.impl("codec_select", &codec_select_cuda); }

}  // namespace unlearn::cuda
