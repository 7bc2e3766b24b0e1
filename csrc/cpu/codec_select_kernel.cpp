// codec_select (FOCI forward selection with the CODEC coefficient) on the CPU,
// on the row scans of cpu/codec_rows.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "common/tie_key.h"
#include "cpu/codec_rows.h"
#include "cpu/ranks.h"
#include "ops/codec_select.h"

namespace unlearn {
namespace {

using cpu::add_column;
using cpu::RowScorer;
using cpu::score_single_columns;
using cpu::StepSums;

// The single-process selection state: which columns are picked, in order, and
// D_S cached as an n x n matrix while it fits.
template <typename T>
class Selector {
 public:
  Selector(const T* cols, int64_t n, int64_t p, const int64_t* R, uint32_t state, bool use_cache)
      : cols_(cols), n_(n), p_(p), R_(R), state_(state), selected_(p, 0) {
    if (use_cache) cache_.assign(n * n, T(0));
  }

  void add(int64_t j) {
    selected_[j] = 1;
    picks_.push_back(cols_ + j * n_);
    if (cache_.empty()) return;
    add_column(cache_.data(), cols_ + j * n_, 0, n_, n_);
  }

  StepSums step() const {
    std::vector<int64_t> candidates;
    for (int64_t j = 0; j < p_; ++j) {
      if (!selected_[j]) candidates.push_back(j);
    }
    const RowScorer<T> scorer(cols_, n_, picks_, cache_.empty() ? nullptr : cache_.data(), 0, R_, state_);
    return scorer.score(0, n_, candidates, p_);
  }

 private:
  const T* cols_;
  int64_t n_, p_;
  const int64_t* R_;
  uint32_t state_;
  std::vector<char> selected_;
  std::vector<const T*> picks_;
  std::vector<T> cache_;
};

// Lowest index among the unselected columns with the largest score.
int64_t best_column(const std::vector<int64_t>& num, const std::vector<char>& taken) {
  int64_t best = -1;
  for (int64_t j = 0; j < static_cast<int64_t>(num.size()); ++j) {
    if (!taken[j] && (best < 0 || num[j] > num[best])) best = j;
  }
  return best;
}

template <typename T>
void select_columns(const at::Tensor& y, const at::Tensor& features, int64_t max_select, bool stop_early, int64_t seed,
                    int64_t max_cache_bytes, at::Tensor& order, at::Tensor& scores) {
  const int64_t n = features.size(0), p = features.size(1);
  const Ranks ranks = cpu::max_ranks(y);
  const auto R_t = ranks.up.contiguous();
  const auto L_t = ranks.down.contiguous();
  const int64_t* R = R_t.data_ptr<int64_t>();
  const int64_t* L = L_t.data_ptr<int64_t>();
  const auto cols_t = features.t().contiguous();  // column j is contiguous
  const T* cols = cols_t.data_ptr<T>();
  const uint32_t state = seed_state(seed);
  int64_t* out_order = order.data_ptr<int64_t>();
  T* out_scores = scores.data_ptr<T>();

  // Step 1: unconditional T(y, f_j) = (n num_j - sum L^2) / sum L (n - L).
  // num_j <= n^2 fits in int64; the sums over rows reach n^3: 128 bits.
  std::vector<int64_t> num(p);
  score_single_columns(cols, n, p, R, state, 0, n, num.data());
  __int128 sum_l2 = 0, den_u = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum_l2 += static_cast<__int128>(L[i]) * L[i];
    den_u += static_cast<__int128>(L[i]) * (n - L[i]);
  }
  std::vector<char> none(p, 0);
  const int64_t first = best_column(num, none);
  const double t1 = static_cast<double>(static_cast<__int128>(n) * num[first] - sum_l2) / static_cast<double>(den_u);
  if (stop_early && t1 <= 0) return;
  out_order[0] = first;
  out_scores[0] = static_cast<T>(t1);

  const bool use_cache = static_cast<double>(n) * n * sizeof(T) <= max_cache_bytes;
  Selector<T> selector(cols, n, p, R, state, use_cache);
  selector.add(first);
  std::vector<char> taken(p, 0);
  taken[first] = 1;
  for (int64_t s = 1; s < max_select; ++s) {
    const StepSums sums = selector.step();
    // y is already a function of the selected columns: nothing is left to explain.
    if (sums.den == 0) return;
    const int64_t j = best_column(sums.num, taken);
    const double t = static_cast<double>(sums.num[j] - sums.self) / static_cast<double>(sums.den);
    if (stop_early && t <= 0) return;
    out_order[s] = j;
    out_scores[s] = static_cast<T>(t);
    taken[j] = 1;
    selector.add(j);
  }
}

std::tuple<at::Tensor, at::Tensor> codec_select_cpu(const at::Tensor& y, const at::Tensor& features, int64_t max_select,
                                                    bool stop_early, int64_t seed, int64_t max_cache_bytes) {
  check_codec_select(y, features, max_select, max_cache_bytes);
  auto order = at::full({max_select}, -1, features.options().dtype(at::kLong));
  auto scores = at::full({max_select}, std::numeric_limits<double>::quiet_NaN(), features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "codec_select_cpu", [&] {
    select_columns<scalar_t>(y, features, max_select, stop_early, seed, max_cache_bytes, order, scores);
  });
  return {order, scores};
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("codec_select", &codec_select_cpu); }

}  // namespace unlearn
