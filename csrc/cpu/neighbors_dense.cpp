#include "cpu/neighbors_dense.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "common/tie_key.h"

namespace unlearn::cpu {

namespace {

// kBytes-wide vectors of T (GCC vector extensions: every lane rounds as a
// scalar operation would), and of integers of T's width.
template <typename T, int kBytes>
struct Simd {
  typedef T Vec __attribute__((vector_size(kBytes)));
  typedef std::conditional_t<sizeof(T) == 8, int64_t, int32_t> Int;
  typedef Int Ints __attribute__((vector_size(kBytes)));
  static constexpr int kLanes = kBytes / sizeof(T);
};

// The running best neighbour of every row, with the distances contiguous so
// that a block's bests load as one vector.
template <typename T>
struct Bests {
  std::vector<T> dist;
  std::vector<uint32_t> key;
  std::vector<int64_t> index;

  explicit Bests(int64_t n)
      : dist(n, no_neighbor<T>().dist), key(n, no_neighbor<T>().key), index(n, no_neighbor<T>().index) {}

  void offer(int64_t i, T s, uint32_t state, int64_t j) {
    Nearest<T> best{dist[i], key[i], index[i]};
    best.offer(s, state, i, j);
    dist[i] = best.dist;
    key[i] = best.key;
    index[i] = best.index;
  }

  // Keeps, for every row, the better of this and `other` (the tie rule is a
  // total order, so merging in any order gives the same result).
  void merge(const Bests& other, uint32_t state) {
    for (size_t i = 0; i < dist.size(); ++i) {
      if (other.index[i] >= 0) offer(static_cast<int64_t>(i), other.dist[i], state, other.index[i]);
    }
  }
};

// The points in blocks of `block` rows, each block column-major (the block's
// values of column 0, then of column 1, ...), so that one load gives a column's
// values for consecutive rows. Rows past n are NaN: their distances are NaN and
// never compare <= a best, so padding never wins.
template <typename T>
std::vector<T> pack_blocks(const T* points, int64_t n, int64_t d, int64_t block) {
  const int64_t blocks = (n + block - 1) / block;
  std::vector<T> packed(blocks * block * d, std::numeric_limits<T>::quiet_NaN());
  for (int64_t i = 0; i < n; ++i) {
    T* dst = packed.data() + (i / block) * block * d + i % block;
    for (int64_t c = 0; c < d; ++c) dst[c * block] = points[i * d + c];
  }
  return packed;
}

// Whether some lane of x is >= 0.
template <typename Ints>
[[gnu::always_inline]] inline bool any_nonnegative(const Ints& x) {
  auto all = x[0];
  for (size_t l = 1; l < sizeof(Ints) / sizeof(all); ++l) all &= x[l];
  return all >= 0;
}

// Offers the distances of a tile (kQ rows from row0, kLanes columns per row
// from col0) to both sides: the tie rule, scalar.
template <typename T>
[[gnu::noinline]] void offer_tile(const T* dist, int kQ, int kLanes, int64_t row0, int64_t col0, uint32_t state,
                                  Bests<T>& best) {
  for (int k = 0; k < kQ; ++k) {
    const int64_t i = row0 + k;
    for (int lane = 0; lane < kLanes; ++lane) {
      const int64_t j = col0 + lane;
      const T s = dist[k * kLanes + lane];
      if (i == j) continue;
      if (s <= best.dist[i]) best.offer(i, s, state, j);
      if (s <= best.dist[j]) best.offer(j, s, state, i);
    }
  }
}

// Offers a tile's sums where one may beat its row's or its column's best.
// Most tiles beat none and cost a few integer operations: every sum is >= +0
// or a positive NaN (padding), and such floats order as their bit patterns do
// as integers (NaN above +inf), so s <= bound exactly where bits(bound) -
// bits(s) >= 0 (no overflow: both are in [0, bits(NaN)]). The differences are
// ANDed, whose sign bit is clear where one of them is >= 0. (Float compares
// would be as exact, but GCC turns a tile's worth of AVX-512 compares into
// scalar ones.)
template <typename T, int kBytes, int kQ, int kV>
[[gnu::always_inline]] inline void offer_tile(const typename Simd<T, kBytes>::Vec (&acc)[kQ][kV], int64_t row0,
                                              int64_t col0, uint32_t state, Bests<T>& best) {
  using Vec = typename Simd<T, kBytes>::Vec;
  using Ints = typename Simd<T, kBytes>::Ints;
  constexpr int kLanes = Simd<T, kBytes>::kLanes;
  Ints col_best[kV];
  for (int v = 0; v < kV; ++v) std::memcpy(&col_best[v], best.dist.data() + col0 + v * kLanes, sizeof(Ints));
  Ints room = Ints{} - 1;
  for (int k = 0; k < kQ; ++k) {
    const Ints row_best = reinterpret_cast<Ints>(Vec{} + best.dist[row0 + k]);
    for (int v = 0; v < kV; ++v) {
      const Ints sum = reinterpret_cast<Ints>(acc[k][v]);
      room &= (row_best - sum) & (col_best[v] - sum);
    }
  }
  if (!any_nonnegative(room)) return;
  T dist[kQ * kV * kLanes];
  for (int k = 0; k < kQ; ++k) {
    for (int v = 0; v < kV; ++v) std::memcpy(dist + (k * kV + v) * kLanes, &acc[k][v], sizeof(Vec));
  }
  offer_tile(dist, kQ, kV * kLanes, row0, col0, state, best);
}

// All distances between the rows of packed block `a` and those of block `b`
// (kV vectors of rows each), kQ rows of a at a time against all of b, the
// accumulators held in registers.
template <typename T, int kBytes, int kQ, int kV>
[[gnu::always_inline]] inline void scan_block_pair(const T* packed, int64_t a, int64_t b, int64_t d, uint32_t state,
                                                   Bests<T>& best) {
  using Vec = typename Simd<T, kBytes>::Vec;
  constexpr int kLanes = Simd<T, kBytes>::kLanes;
  constexpr int kBlock = kV * kLanes;
  const T* rows = packed + a * kBlock * d;
  const T* cols = packed + b * kBlock * d;
  for (int r = 0; r < kBlock; r += kQ) {
    Vec acc[kQ][kV] = {};
    for (int64_t c = 0; c < d; ++c) {
      Vec cand[kV];
      for (int v = 0; v < kV; ++v) std::memcpy(&cand[v], cols + c * kBlock + v * kLanes, sizeof(Vec));
      const T* q = rows + c * kBlock + r;
      for (int k = 0; k < kQ; ++k) {
        for (int v = 0; v < kV; ++v) {
          const Vec diff = q[k] - cand[v];
          acc[k][v] += diff * diff;
        }
      }
    }
    offer_tile<T, kBytes, kQ, kV>(acc, a * kBlock + r, b * kBlock, state, best);
  }
}

// Blocks [a_begin, a_end) against the next blocks / 2 blocks (cyclically):
// over all a, every pair of blocks meets at least once, and every a does the
// same work.
template <typename T, int kBytes, int kQ, int kV>
[[gnu::always_inline]] inline void scan_blocks(const T* packed, int64_t blocks, int64_t d, uint32_t state,
                                               int64_t a_begin, int64_t a_end, Bests<T>& best) {
  for (int64_t a = a_begin; a < a_end; ++a) {
    for (int64_t offset = 0; offset <= blocks / 2; ++offset) {
      scan_block_pair<T, kBytes, kQ, kV>(packed, a, (a + offset) % blocks, d, state, best);
    }
  }
}

template <typename T>
using ScanFn = void (*)(const T*, int64_t, int64_t, uint32_t, int64_t, int64_t, Bests<T>&);

// A block is 2 vectors of rows, as wide as the instruction set torch picked
// for its own kernels (the processor's widest unless ATEN_CPU_CAPABILITY says
// otherwise); the build itself targets the baseline instruction set. Tiles of
// 8 rows (4 with 16 registers) fill most of the vector registers.
template <typename T>
struct Kernel {
  int64_t block;
  ScanFn<T> scan;
};

#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx512f,avx512dq"))) void scan_avx512(const T* packed, int64_t blocks, int64_t d, uint32_t state,
                                                             int64_t a_begin, int64_t a_end, Bests<T>& best) {
  scan_blocks<T, 64, 8, 2>(packed, blocks, d, state, a_begin, a_end, best);
}

template <typename T>
__attribute__((target("avx2"))) void scan_avx2(const T* packed, int64_t blocks, int64_t d, uint32_t state,
                                               int64_t a_begin, int64_t a_end, Bests<T>& best) {
  scan_blocks<T, 32, 4, 2>(packed, blocks, d, state, a_begin, a_end, best);
}
#endif

template <typename T>
void scan_baseline(const T* packed, int64_t blocks, int64_t d, uint32_t state, int64_t a_begin, int64_t a_end,
                   Bests<T>& best) {
  scan_blocks<T, 16, 4, 2>(packed, blocks, d, state, a_begin, a_end, best);
}

template <typename T>
Kernel<T> pick_kernel() {
#if defined(__x86_64__)
  static const std::string capability = at::get_cpu_capability();
  if (capability == "AVX512") return {2 * 64 / sizeof(T), &scan_avx512<T>};
  if (capability == "AVX2") return {2 * 32 / sizeof(T), &scan_avx2<T>};
#endif
  return {2 * 16 / sizeof(T), &scan_baseline<T>};
}

}  // namespace

template <typename T>
void dense_nearest_neighbors(const T* points, int64_t n, int64_t d, uint32_t state, int64_t* out) {
  const Kernel<T> kernel = pick_kernel<T>();
  const std::vector<T> packed = pack_blocks(points, n, d, kernel.block);
  const int64_t blocks = static_cast<int64_t>(packed.size()) / (kernel.block * d);
  Bests<T> best(blocks * kernel.block);
  // Enough blocks per task for some 2^20 squared differences: fewer are not
  // worth waking a thread.
  const int64_t per_block = (blocks / 2 + 1) * kernel.block * kernel.block * d;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / per_block);
  std::mutex merging;
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    Bests<T> mine(blocks * kernel.block);
    kernel.scan(packed.data(), blocks, d, state, begin, end, mine);
    const std::lock_guard<std::mutex> lock(merging);
    best.merge(mine, state);
  });
  std::copy(best.index.begin(), best.index.begin() + n, out);
}

template void dense_nearest_neighbors<float>(const float*, int64_t, int64_t, uint32_t, int64_t*);
template void dense_nearest_neighbors<double>(const double*, int64_t, int64_t, uint32_t, int64_t*);

}  // namespace unlearn::cpu
