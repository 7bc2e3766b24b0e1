// The row scans of FOCI steps, shared by codec_select (one process) and
// codec_step (one block of rows and columns, for sharded selection).
//
// Step 1 scores every column on its own: sorting a column gives each point's
// 1-D neighbours in O(n log n). Later steps keep D_S(i, k) = sum over selected
// columns of (f_i - f_k)^2, cached as an n x n matrix while it fits in
// max_cache_bytes and recomputed row by row otherwise. For row i, the
// neighbour of i in S + {j} minimises D_S(i, k) + (f_ij - f_kj)^2; since the
// added term is >= 0, scanning k in increasing D_S(i, k) can stop at the first
// k with D_S(i, k) > the best total so far. Every candidate of the step shares
// row i's ordering, built in tiers: one linear pass gathers the points below a
// bound (first set from a probe of the row to hold a few dozen points, then
// from the candidates still scanning) and only those are sorted, so most
// candidates look at a few dozen k instead of n. The result is exact: the same
// neighbours as the dense search, ties included.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <numeric>
#include <vector>

#include "common/ranks.h"
#include "common/tie_key.h"

namespace unlearn::cpu {

inline constexpr int64_t kProbe = 64;       // points probed for the first tier bound
inline constexpr int64_t kTierTarget = 48;  // points wanted in the first tier

// Step 1: for every column, the sum over rows i in [row_begin, row_end) of
// min(R_i, R_M(i)) with M the 1-D neighbour.
template <typename T>
void score_single_columns(const T* cols, int64_t n, int64_t p, const int64_t* R, uint32_t state, int64_t row_begin,
                          int64_t row_end, int64_t* num) {
  at::parallel_for(0, p, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> order(n), group_start(n), group_end(n);
    for (int64_t j = begin; j < end; ++j) {
      const T* v = cols + j * n;
      std::iota(order.begin(), order.end(), int64_t{0});
      std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] < v[b]; });
      for (int64_t t = 0; t < n; ++t) {
        group_start[t] = (t > 0 && v[order[t - 1]] == v[order[t]]) ? group_start[t - 1] : t;
      }
      for (int64_t t = n - 1; t >= 0; --t) {
        group_end[t] = (t + 1 < n && v[order[t + 1]] == v[order[t]]) ? group_end[t + 1] : t + 1;
      }
      int64_t total = 0;
      for (int64_t t = 0; t < n; ++t) {
        const int64_t i = order[t];
        if (i < row_begin || i >= row_end) continue;
        const T vi = v[i];
        Nearest<T> best = no_neighbor<T>();
        for (int64_t u = group_start[t]; u < group_end[t]; ++u) {
          if (u != t) best.offer(T(0), state, i, order[u]);
        }
        // Walk outwards group by group while the squared gap can still tie.
        for (int64_t pos = group_start[t] - 1; pos >= 0; pos = group_start[pos] - 1) {
          const T diff = vi - v[order[pos]];
          const T dist = diff * diff;
          if (dist > best.dist) break;
          for (int64_t u = group_start[pos]; u <= pos; ++u) best.offer(dist, state, i, order[u]);
        }
        for (int64_t pos = group_end[t]; pos < n; pos = group_end[pos]) {
          const T diff = vi - v[order[pos]];
          const T dist = diff * diff;
          if (dist > best.dist) break;
          for (int64_t u = pos; u < group_end[pos]; ++u) best.offer(dist, state, i, order[u]);
        }
        total += std::min(R[i], R[best.index]);
      }
      num[j] = total;
    }
  });
}

// Sums accumulated over the rows of one step.
struct StepSums {
  std::vector<int64_t> num;  // per candidate: sum_i min(R_i, R_M(i))
  int64_t self = 0;          // sum_i min(R_i, R_N(i)), N in S-space
  int64_t den = 0;           // sum_i R_i - min(R_i, R_N(i))
};

// Scores candidate columns over a block of rows, given the selected columns
// S: for row i, the neighbour of i in S + {j} minimises D_S(i, k) + (f_ij -
// f_kj)^2. D_S rows come from `cache` (rows [row0, row0 + rows) of the n x n
// matrix) or are recomputed from the selected columns, added in pick order.
template <typename T>
class RowScorer {
 public:
  RowScorer(const T* cols, int64_t n, std::vector<const T*> selected, const T* cache, int64_t row0, const int64_t* R,
            uint32_t state)
      : cols_(cols), n_(n), selected_(std::move(selected)), cache_(cache), row0_(row0), R_(R), state_(state) {}

  // Sums over rows [begin, end) for the candidate columns `candidates`
  // (indices into cols); num has one entry per column of cols (p of them).
  StepSums score(int64_t begin, int64_t end, const std::vector<int64_t>& candidates, int64_t p) const {
    StepSums total;
    total.num.assign(p, 0);
    std::mutex merge;
    at::parallel_for(begin, end, 8, [&](int64_t b, int64_t e) {
      StepSums local;
      local.num.assign(p, 0);
      RowScratch scratch(n_, p);
      for (int64_t i = b; i < e; ++i) score_row(i, candidates, scratch, local);
      std::lock_guard<std::mutex> lock(merge);
      for (int64_t j = 0; j < p; ++j) total.num[j] += local.num[j];
      total.self += local.self;
      total.den += local.den;
    });
    return total;
  }

 private:
  struct RowScratch {
    RowScratch(int64_t n, int64_t p) : row(n), tier(n), best(p), active(p), next(p) {}
    std::vector<T> row;
    std::vector<int64_t> tier;
    std::vector<Nearest<T>> best;
    std::vector<int64_t> active, next;
    T probe[kProbe];
  };

  const T* distances_row(int64_t i, RowScratch& s) const {
    if (cache_ != nullptr) return cache_ + (i - row0_) * n_;
    std::fill(s.row.begin(), s.row.end(), T(0));
    for (const T* c : selected_) {  // same order of additions as the cache
      const T a = c[i];
      for (int64_t k = 0; k < n_; ++k) {
        const T diff = a - c[k];
        s.row[k] += diff * diff;
      }
    }
    return s.row.data();
  }

  // Bounds on D_S below which about kTierTarget, 4 kTierTarget, 16
  // kTierTarget, ... points of the row lie, read off an evenly spaced probe of
  // the row into s.probe (sorted); returns how many bounds there are.
  int64_t tier_bounds(const T* d, int64_t i, RowScratch& s) const {
    const int64_t m = n_ - 1;
    if (m <= 2 * kProbe) return 0;
    for (int64_t t = 0; t < kProbe; ++t) {
      const int64_t k = (t * m) / kProbe;
      s.probe[t] = d[k < i ? k : k + 1];
    }
    std::sort(s.probe, s.probe + kProbe);
    int64_t count = 0;
    for (int64_t rank = std::max<int64_t>(1, (kProbe * kTierTarget) / m); rank < kProbe; rank *= 4) {
      s.probe[count++] = s.probe[rank];
    }
    return count;
  }

  void score_row(int64_t i, const std::vector<int64_t>& candidates, RowScratch& s, StepSums& sums) const {
    const T* d = distances_row(i, s);
    Nearest<T> self = no_neighbor<T>();
    int64_t n_active = 0;
    for (const int64_t j : candidates) {
      s.best[j] = no_neighbor<T>();
      s.active[n_active++] = j;
    }
    const auto closer = [d](int64_t a, int64_t b) { return d[a] < d[b]; };
    // Tiers (low, high] of D_S, each gathered by one pass over the row and
    // sorted: the first holds about kTierTarget points, each later one about
    // four times as many, capped by the largest running best of the candidates
    // still scanning (past it nothing can change).
    constexpr T kInf = std::numeric_limits<T>::infinity();
    const int64_t bounds = tier_bounds(d, i, s);
    T low = -kInf;
    T high = bounds > 0 ? s.probe[0] : kInf;
    for (int64_t tier = 1;; ++tier) {
      int64_t size = 0;
      for (int64_t k = 0; k < n_; ++k) {
        const T dk = d[k];
        s.tier[size] = k;
        size += (k != i) & (dk > low) & (dk <= high);
      }
      std::sort(s.tier.begin(), s.tier.begin() + size, closer);
      if (self.index < 0) {
        for (int64_t t = 0; t < size; ++t) self.offer(d[s.tier[t]], state_, i, s.tier[t]);
      }
      int64_t n_next = 0;
      T reach = -kInf;
      for (int64_t a = 0; a < n_active; ++a) {
        const int64_t j = s.active[a];
        const T* c = cols_ + j * n_;
        const T fi = c[i];
        Nearest<T> best = s.best[j];
        for (int64_t t = 0; t < size; ++t) {
          const int64_t k = s.tier[t];
          const T dk = d[k];
          if (dk > best.dist) break;
          const T diff = fi - c[k];
          best.offer(dk + diff * diff, state_, i, k);
        }
        s.best[j] = best;
        // Every point beyond this tier lies farther than `high`.
        if (best.dist > high) {
          s.next[n_next++] = j;
          reach = std::max(reach, best.dist);
        }
      }
      std::swap(s.active, s.next);
      n_active = n_next;
      if (n_active == 0 && self.index >= 0) break;
      low = high;
      high = tier < bounds ? std::min(s.probe[tier], reach) : reach;
    }
    const int64_t r_n = std::min(R_[i], R_[self.index]);
    sums.self += r_n;
    sums.den += R_[i] - r_n;
    for (const int64_t j : candidates) sums.num[j] += std::min(R_[i], R_[s.best[j].index]);
  }

  const T* cols_;
  int64_t n_;
  std::vector<const T*> selected_;
  const T* cache_;
  int64_t row0_;
  const int64_t* R_;
  uint32_t state_;
};

// D_S(i, k) += (c_i - c_k)^2 for the rows i in [begin, end) of a block of D_S
// that holds those rows (n entries each), in the order the kernels add.
template <typename T>
void add_column(T* block, const T* c, int64_t begin, int64_t end, int64_t n) {
  at::parallel_for(begin, end, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T* row = block + (i - begin) * n;
      const T a = c[i];
      for (int64_t k = 0; k < n; ++k) {
        const T diff = a - c[k];
        row[k] += diff * diff;
      }
    }
  });
}

}  // namespace unlearn::cpu
