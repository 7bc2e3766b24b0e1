// codec_step on the CPU: one FOCI step over a block of rows and a block of
// candidate columns, on the row scans of cpu/codec_rows.h.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "common/tie_key.h"
#include "cpu/codec_rows.h"
#include "cpu/ranks.h"
#include "ops/codec_step.h"

namespace unlearn {
namespace {

template <typename T>
void step_block(const at::Tensor& R_t, const at::Tensor& candidates, const at::Tensor& selected, int64_t row_begin,
                int64_t row_end, int64_t seed, const std::optional<at::Tensor>& cache, at::Tensor& num,
                at::Tensor& self) {
  const int64_t n = candidates.size(0), q = candidates.size(1), s = selected.size(1);
  const int64_t* R = R_t.data_ptr<int64_t>();
  const auto cols_t = candidates.t().contiguous();  // column j is contiguous
  const T* cols = cols_t.data_ptr<T>();
  const uint32_t state = seed_state(seed);
  int64_t* out = num.data_ptr<int64_t>();
  if (s == 0) {  // D_S = 0: every column on its own
    cpu::score_single_columns(cols, n, q, R, state, row_begin, row_end, out);
    self.fill_(0);
    return;
  }
  const auto picked_t = selected.t().contiguous();
  std::vector<const T*> picked;
  for (int64_t c = 0; c < s; ++c) picked.push_back(picked_t.data_ptr<T>() + c * n);
  const auto block = cache.has_value() ? cache->contiguous() : at::Tensor();
  const cpu::RowScorer<T> scorer(cols, n, picked, block.defined() ? block.data_ptr<T>() : nullptr, row_begin, R, state);
  std::vector<int64_t> all(q);
  for (int64_t j = 0; j < q; ++j) all[j] = j;
  const cpu::StepSums sums = scorer.score(row_begin, row_end, all, q);
  std::copy(sums.num.begin(), sums.num.end(), out);
  self.fill_(sums.self);
}

std::tuple<at::Tensor, at::Tensor> codec_step_cpu(const at::Tensor& y, const at::Tensor& candidates,
                                                  const at::Tensor& selected, int64_t row_begin, int64_t row_end,
                                                  int64_t seed, const std::optional<at::Tensor>& cache) {
  check_codec_step(y, candidates, selected, row_begin, row_end, cache);
  const auto R = cpu::max_ranks(y).up.contiguous();
  auto num = at::zeros({candidates.size(1)}, candidates.options().dtype(at::kLong));
  auto self = at::zeros({}, candidates.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(candidates.scalar_type(), "codec_step_cpu", [&] {
    step_block<scalar_t>(R, candidates, selected, row_begin, row_end, seed, cache, num, self);
  });
  return {num, self};
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("codec_step", &codec_step_cpu); }

}  // namespace unlearn
