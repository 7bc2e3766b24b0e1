// codec_select (FOCI forward selection with the CODEC coefficient) on CUDA.
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
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/exact_sum.h"
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
__device__ __forceinline__ void offer_tie(T& bd, int& bi, T v, uint32_t state, int64_t i, int64_t k) {
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
                const T* __restrict__ picked, int nsel, const int64_t* __restrict__ R, uint32_t state,
                unsigned long long* __restrict__ num) {
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
    atomicAdd(num + static_cast<int64_t>(blockIdx.x) * (32 * RJ) + t, static_cast<unsigned long long>(s));
  }
}

// Step 1 for column j = blockIdx.y (strided): thread t takes the point at
// sorted position t, offers every other point of its group of equal values at
// distance 0, then walks outwards group by group while the squared gap can
// still tie (the CPU kernel's walk), and adds min(R_i, R_M(i)) to num[j].
template <typename T>
__global__ void first_step_kernel(const T* __restrict__ sorted, const int64_t* __restrict__ order, int64_t n, int64_t p,
                                  const int64_t* __restrict__ R, uint32_t state, unsigned long long* __restrict__ num) {
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
    pick_kernel(const int64_t* __restrict__ num, const bool* __restrict__ taken, int64_t p, int64_t* __restrict__ out) {
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

// Row blocks of step_kernel's grid (its y dimension, at most 65535).
int64_t step_row_blocks(int64_t n) {
  const int64_t row_blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  TORCH_CHECK_VALUE(row_blocks <= 65535, "codec_select: features has ", n, " rows, but the CUDA kernel takes at most ",
                    65535 * kRowsPerBlock);
  return row_blocks;
}

// What a step reads back, its only host synchronisation: the unselected column
// with the largest num (lowest index on ties), that num, and the S-space sum
// num[p] = sum_i min(R_i, R_N(i)).
struct Pick {
  int64_t column;
  int64_t num;
  int64_t self;
};

// The selection state on the device, the counterpart of the CPU Selector: the
// features zero-padded for step_kernel, D_S cached as an n x n matrix while it
// fits (else the picked columns, from which step_kernel recomputes its tiles),
// and the buffers every step reuses.
template <typename T>
class Selector {
 public:
  static constexpr int kCandsPerBlock = 32 * cols_per_lane<T>();

  Selector(const at::Tensor& features, const at::Tensor& R, int64_t max_select, int64_t row_blocks, uint32_t state,
           bool use_cache)
      : n_(features.size(0)),
        p_(features.size(1)),
        // Candidates padded to whole blocks; column p (zero) gives the S-space neighbour.
        P_((p_ + 1 + kCandsPerBlock - 1) / kCandsPerBlock * kCandsPerBlock),
        R_(R),
        state_(state),
        use_cache_(use_cache),
        stream_(c10::cuda::getCurrentCUDAStream()),
        grid_(static_cast<unsigned>(P_ / kCandsPerBlock), static_cast<unsigned>(row_blocks)) {
    const auto options = features.options();
    feat_ = at::zeros({n_, P_}, options);
    feat_.narrow(1, 0, p_).copy_(features);
    cols_t_ = features.t().contiguous();  // column j is contiguous
    if (use_cache_) {
      cache_ = at::zeros({n_, n_}, options);
    } else {
      picked_ = at::empty({max_select, n_}, options);
    }
    num_ = at::empty({P_}, options.dtype(at::kLong));
    taken_ = at::zeros({p_}, options.dtype(at::kBool));
    result_ = at::empty({3}, options.dtype(at::kLong));
  }

  // Step 1: every column sorted once, each point's 1-D neighbour next to it.
  Pick first_step() {
    num_.zero_();
    const auto sorted = at::sort(cols_t_, /*dim=*/1);
    const auto values = std::get<0>(sorted).contiguous();
    const auto indices = std::get<1>(sorted).contiguous();
    const dim3 blocks(static_cast<unsigned>((n_ + 255) / 256), static_cast<unsigned>(std::min<int64_t>(p_, 65535)));
    first_step_kernel<T><<<blocks, 256, 0, stream_>>>(values.data_ptr<T>(), indices.data_ptr<int64_t>(), n_, p_,
                                                      R_.data_ptr<int64_t>(), state_, num_sums());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return pick();
  }

  // A later step: every candidate's num over D_S, then the pick.
  Pick step() {
    num_.zero_();
    if (use_cache_) {
      launch_step<Dist::kCache>();
    } else {
      launch_step<Dist::kRecompute>();
    }
    return pick();
  }

  // Adds column j to S: D_S in place, or the list the tiles are recomputed from
  // (in pick order, as the cache adds them).
  void add(int64_t j) {
    taken_[j].fill_(true);
    if (use_cache_) {
      const dim3 blocks(static_cast<unsigned>(std::min<int64_t>((n_ + 255) / 256, 64)),
                        static_cast<unsigned>(std::min<int64_t>(n_, 4096)));
      add_column_kernel<T><<<blocks, 256, 0, stream_>>>(cache_.data_ptr<T>(), cols_t_[j].data_ptr<T>(), n_);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      picked_[selected_].copy_(cols_t_[j]);
    }
    ++selected_;
  }

 private:
  // num as the kernels add into it (atomicAdd has no signed 64-bit overload).
  unsigned long long* num_sums() { return reinterpret_cast<unsigned long long*>(num_.data_ptr<int64_t>()); }

  // num_j of every candidate j (and of the zero column p) over all rows, with
  // D_S read from the cache or recomputed per tile from the picked columns.
  template <Dist kMode>
  void launch_step() {
    const T* cache = use_cache_ ? cache_.data_ptr<T>() : nullptr;
    const T* picked = use_cache_ ? nullptr : picked_.data_ptr<T>();
    step_kernel<T, kMode><<<grid_, kWarps * 32, 0, stream_>>>(feat_.data_ptr<T>(), n_, P_, cache, picked,
                                                              static_cast<int>(selected_), R_.data_ptr<int64_t>(),
                                                              state_, num_sums());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  // The argmax of num on the device, then its three numbers on the host.
  Pick pick() {
    pick_kernel<<<1, kPickThreads, 0, stream_>>>(num_.data_ptr<int64_t>(), taken_.data_ptr<bool>(), p_,
                                                 result_.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const auto host = result_.cpu();
    const int64_t* h = host.data_ptr<int64_t>();
    return {h[0], h[1], h[2]};
  }

  int64_t n_, p_, P_;
  at::Tensor R_;
  uint32_t state_;
  bool use_cache_;
  c10::cuda::CUDAStream stream_;
  dim3 grid_;
  int64_t selected_ = 0;  // columns in S
  at::Tensor feat_, cols_t_, cache_, picked_;
  at::Tensor num_, taken_, result_;
};

template <typename T>
void select_columns(const at::Tensor& y, const at::Tensor& features, int64_t max_select, bool stop_early, int64_t seed,
                    int64_t max_cache_bytes, std::vector<int64_t>& order, std::vector<double>& scores) {
  const int64_t n = features.size(0);
  const int64_t row_blocks = step_row_blocks(n);
  const uint32_t state = seed_state(seed);

  // Ranks once per call; the constant sums are read once, before the steps.
  const Ranks ranks = max_ranks(y);
  const auto R = ranks.up.contiguous();
  const auto& L = ranks.down;
  // sum R <= n^2 fits in int64; the step-1 sums reach n^3: summed exactly.
  const int64_t sum_r = R.sum().item<int64_t>();
  const __int128 sum_l2 = exact_sum(L * L);
  const __int128 den_u = exact_sum(L * (n - L));

  const bool use_cache = static_cast<double>(n) * n * sizeof(T) <= max_cache_bytes;
  Selector<T> selector(features, R, max_select, row_blocks, state, use_cache);

  // Step 1: unconditional T(y, f_j) = (n num_j - sum L^2) / sum L (n - L).
  const Pick first = selector.first_step();
  const double t1 = static_cast<double>(static_cast<__int128>(n) * first.num - sum_l2) / static_cast<double>(den_u);
  if (stop_early && t1 <= 0) return;
  order.push_back(first.column);
  scores.push_back(t1);
  selector.add(first.column);
  for (int64_t s = 1; s < max_select; ++s) {
    const Pick best = selector.step();
    const int64_t den = sum_r - best.self;
    // y is already a function of the selected columns: nothing is left to explain.
    if (den == 0) return;
    const double t = static_cast<double>(best.num - best.self) / static_cast<double>(den);
    if (stop_early && t <= 0) return;
    order.push_back(best.column);
    scores.push_back(t);
    selector.add(best.column);
  }
}

std::tuple<at::Tensor, at::Tensor> codec_select_cuda(const at::Tensor& y, const at::Tensor& features,
                                                     int64_t max_select, bool stop_early, int64_t seed,
                                                     int64_t max_cache_bytes) {
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
